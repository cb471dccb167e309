"""CrossFittedClassifier: one model per fold, each row's out-of-fold probabilities, the folds' average."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import make_column_transformer
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import KFold, RepeatedStratifiedKFold, StratifiedKFold, cross_val_predict
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.tree import DecisionTreeClassifier
from sklearn.utils.estimator_checks import parametrize_with_checks

from skmm.estimators import CrossFittedClassifier


@parametrize_with_checks([CrossFittedClassifier(LogisticRegression())])
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


def test_out_of_fold_probabilities_are_cross_val_predicts_and_new_rows_get_the_folds_average():
    X, y = make_classification(n_samples=120, n_classes=3, n_informative=4, random_state=0)
    folds = StratifiedKFold(4, shuffle=True, random_state=0)
    model = CrossFittedClassifier(LogisticRegression(max_iter=1000), cv=folds).fit(X, y)
    expected = cross_val_predict(LogisticRegression(max_iter=1000), X, y, cv=folds, method="predict_proba")
    np.testing.assert_allclose(model.out_of_fold_proba_, expected)
    assert len(model.estimators_) == 4
    X_new = X[:7] + 0.5
    np.testing.assert_allclose(model.predict_proba(X_new),
                               np.mean([fold.predict_proba(X_new) for fold in model.estimators_], axis=0))
    assert model.n_features_in_ == 20


def test_each_row_is_predicted_by_a_model_that_never_saw_it():
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(200, 5)), rng.integers(0, 2, 200)  # labels unrelated to X: only memory can fit them
    model = CrossFittedClassifier(DecisionTreeClassifier(random_state=0), cv=5).fit(X, y)
    assert all(fold.score(X, y) > 0.75 for fold in model.estimators_)  # each tree knows its 4/5 of the rows by heart
    out_of_fold = np.mean(model.classes_[model.out_of_fold_proba_.argmax(axis=1)] == y)
    assert out_of_fold < 0.62  # 200 rows at chance: 0.5 +- 0.035


def test_a_class_missing_from_a_fold_gets_probability_zero_from_that_fold_model():
    X = np.arange(12, dtype=float).reshape(-1, 1)
    y = np.array([0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2])
    model = CrossFittedClassifier(LogisticRegression(), cv=KFold(3)).fit(X, y)  # fold k holds class k alone
    assert [list(fold.classes_) for fold in model.estimators_] == [[1, 2], [0, 2], [0, 1]]
    np.testing.assert_array_equal(model.out_of_fold_proba_[:4, 0], 0.0)  # the class its model never saw
    np.testing.assert_allclose(model.predict_proba(X).sum(axis=1), 1.0)


def test_folds_that_leave_rows_out_are_refused():
    X, y = make_classification(n_samples=40, random_state=0)
    halves = [(np.arange(20), np.arange(20, 30))]  # rows 0-19 and 30-39 are never predicted
    with pytest.raises(ValueError, match="every row in a fold's test part"):
        CrossFittedClassifier(LogisticRegression(), cv=halves).fit(X, y)


def test_one_class_is_refused_before_any_fold_is_fitted():
    X = np.zeros((10, 2))
    with pytest.raises(ValueError, match=r"y has one class \('a'\)"):
        CrossFittedClassifier(LogisticRegression(), cv=KFold(2)).fit(X, np.array(["a"] * 10))


def test_a_table_of_columns_is_split_by_rows():
    rng = np.random.default_rng(1)
    table = {"price": rng.normal(size=60), "brand": ["a", "b", "c"] * 20}
    y = (table["price"] > 0).astype(int)
    reads_price = make_pipeline(make_column_transformer((StandardScaler(), ["price"])), LogisticRegression())
    model = CrossFittedClassifier(reads_price, cv=3).fit(table, y)
    assert model.score(pd.DataFrame(table), y) > 0.9
    assert list(model.feature_names_in_) == ["price", "brand"]


def test_repeated_folds_average_each_rows_out_of_fold_probabilities():
    X, y = make_classification(n_samples=90, n_classes=3, n_informative=4, random_state=0)
    repeated = RepeatedStratifiedKFold(n_splits=3, n_repeats=2, random_state=0)
    model = CrossFittedClassifier(LogisticRegression(max_iter=1000), cv=repeated).fit(X, y)
    assert len(model.estimators_) == 6
    each_repeat = [cross_val_predict(LogisticRegression(max_iter=1000), X, y, cv=list(splits), method="predict_proba")
                   for splits in (list(repeated.split(X, y))[:3], list(repeated.split(X, y))[3:])]
    np.testing.assert_allclose(model.out_of_fold_proba_, np.mean(each_repeat, axis=0))
