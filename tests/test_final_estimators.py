"""LogLinearPoolClassifier and default_final_estimator: a stack's final estimators."""

import numpy as np
import pytest
from scipy.optimize import check_grad
from scipy.special import softmax
from sklearn.linear_model import LogisticRegression
from sklearn.utils.estimator_checks import check_estimator

from skmm.estimators import LogLinearPoolClassifier, default_final_estimator, final_estimator_name
from skmm.estimators._final_estimators import _penalised_log_loss


def _members(y, n_classes, strengths, seed=0):
    """Probabilities of one simulated member per strength, side by side: softmax(strength * one-hot(y) + noise)."""
    rng = np.random.default_rng(seed)
    blocks = [softmax(strength * np.eye(n_classes)[y] + rng.normal(size=(len(y), n_classes)), axis=1)
              for strength in strengths]
    return np.hstack(blocks)


FEED_OTHER_WIDTHS = {
    "check_classifiers_classes", "check_classifiers_train", "check_dtype_object", "check_estimators_dtypes",
    "check_estimators_fit_returns_self", "check_estimators_nan_inf", "check_estimators_overwrite_params",
    "check_estimators_pickle", "check_fit2d_1feature", "check_n_features_in_after_fitting",
    "check_pipeline_consistency", "check_positive_only_tag_during_fit", "check_readonly_memmap_input"}


def test_sklearn_checks_fail_only_where_they_feed_widths_that_are_not_probability_blocks():
    # It reads n_members x n_classes columns; the generic checks feed 1, 2, 3... columns with 2 or 3 classes. Every
    # check that fails must fail on that, and the others (clone, parameters, fitted state, ...) pass.
    results = check_estimator(LogLinearPoolClassifier(), on_fail=None)
    failed = [result for result in results if result["status"] == "failed"]
    assert {result["check_name"] for result in failed} == FEED_OTHER_WIDTHS
    assert {result["check_name"] for result in results if result["status"] == "passed"} >= {
        "check_no_attributes_set_in_init", "check_parameters_default_constructible", "check_get_params_invariance",
        "check_set_params", "check_dont_overwrite_parameters", "check_fit_check_is_fitted", "check_fit_score_takes_y",
        "check_estimators_unfitted", "check_classifiers_regression_target", "check_fit2d_1sample"}
    assert all("not a block of" in _messages(result["exception"]) for result in failed), [
        (result["check_name"], _messages(result["exception"])[-300:]) for result in failed
        if "not a block of" not in _messages(result["exception"])]


def _messages(error):
    """The error's message and those of the errors it was raised from (a check wraps the estimator's error)."""
    return str(error) + (" <- " + _messages(error.__cause__ or error.__context__)
                         if (error.__cause__ or error.__context__) else "")


def test_the_gradient_is_the_loss_derivative():
    y = np.arange(60) % 4
    log_odds = np.log(_members(y, 4, [1.0, 2.0, 0.0]).reshape(60, 3, 4))
    targets = np.eye(4)[y]
    parameters = np.random.default_rng(1).normal(size=3 + 4)
    error = check_grad(lambda p: _penalised_log_loss(p, log_odds, targets, 0.01)[0],
                       lambda p: _penalised_log_loss(p, log_odds, targets, 0.01)[1], parameters)
    assert error < 1e-5


def test_the_pool_trusts_the_informative_member_and_gives_probabilities():
    y = np.arange(300) % 3
    X = _members(y, 3, [3.0, 0.0])  # a good member, then noise
    pool = LogLinearPoolClassifier().fit(X, y)
    assert pool.coef_[0] > 0.5 and abs(pool.coef_[1]) < 0.2 and pool.intercept_.shape == (3,)
    probabilities = pool.predict_proba(X)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1)
    np.testing.assert_array_equal(pool.predict(X), pool.classes_[probabilities.argmax(axis=1)])
    assert pool.score(X, y) > 0.9
    binary = LogLinearPoolClassifier().fit(_members(y % 2, 2, [3.0]), np.array(["a", "b"])[y % 2])
    scores = binary.decision_function(_members(y % 2, 2, [3.0]))
    assert scores.shape == (300,)  # scikit-learn's binary convention: > 0 is the second class
    np.testing.assert_array_equal(binary.predict(_members(y % 2, 2, [3.0])), np.where(scores > 0, "b", "a"))


def test_given_classes_keep_a_column_per_class_that_y_lacks():
    y = np.arange(90) % 3
    X = _members(y, 3, [2.0, 1.0])
    keep = y != 2  # a fold without class 2: the blocks still have its column
    pool = LogLinearPoolClassifier(classes=[0, 1, 2]).fit(X[keep], y[keep])
    assert list(pool.classes_) == [0, 1, 2] and pool.predict_proba(X).shape == (90, 3)
    assert pool.intercept_.argmin() == 2  # never seen: its bias is the lowest
    np.testing.assert_allclose(pool.predict_proba(X).sum(axis=1), 1)
    three_members = _members(y, 3, [2.0, 1.0, 0.5])
    with pytest.raises(ValueError, match="X has 9 columns, not a block of 2"):  # y's classes alone: 2
        LogLinearPoolClassifier().fit(three_members[keep], y[keep])
    with pytest.raises(ValueError, match=r"classes \[2\] that are not in"):
        LogLinearPoolClassifier(classes=[0, 1]).fit(X, y)


def test_with_many_classes_and_few_rows_the_default_picks_the_pool_and_beats_the_regression():
    # 16 classes, 9 members (2 informative), 400 rows: the regression's 9 x 16 x 16 weights outnumber what 400 rows
    # pin down; the pool's 9 weights do not.
    n_classes, strengths = 16, [2.5, 2.0, 0.5, 0.5, 0.3, 0.3, 0.2, 0.1, 0.0]
    y_train, y_test = np.arange(400) % n_classes, np.arange(800) % n_classes
    X_train, X_test = _members(y_train, n_classes, strengths, seed=0), _members(y_test, n_classes, strengths, seed=1)
    search = default_final_estimator(classes=np.arange(n_classes), cv=5).fit(X_train, y_train)
    assert isinstance(search.best_params_["final"], LogLinearPoolClassifier)
    assert final_estimator_name(search) == "LogLinearPoolClassifier"
    regression = search.param_grid["final"][0]
    best_member = max(np.mean(X_test[:, k:k + n_classes].argmax(axis=1) == y_test)
                      for k in range(0, X_test.shape[1], n_classes))
    pooled = search.score(X_test, y_test)
    assert pooled > regression.fit(X_train, y_train).score(X_test, y_test) + 0.02
    assert pooled > best_member


def test_when_a_member_confuses_two_classes_the_default_picks_the_regression():
    # A member that is right but calls class 0 "1" and class 1 "0": a regression on its columns undoes the swap, a
    # pool (one weight for all of a member's classes) cannot.
    y = np.arange(600) % 3
    swapped = np.array([1, 0, 2])[y]
    X = np.hstack([_members(swapped, 3, [3.0], seed=0), _members(y, 3, [0.5], seed=1)])
    search = default_final_estimator(classes=[0, 1, 2]).fit(X[:300], y[:300])
    assert not isinstance(search.best_params_["final"], LogLinearPoolClassifier)
    assert search.score(X[300:], y[300:]) > 0.9
    assert LogLinearPoolClassifier().fit(X[:300], y[:300]).score(X[300:], y[300:]) < 0.7
    assert isinstance(search.best_estimator_[-1][-1], LogisticRegression)
    assert final_estimator_name(search) == "LogisticRegression"
