"""CrossFittedClassifier: one model per cross-validation fold, their out-of-fold probabilities, their average."""

from __future__ import annotations

import numpy as np
from scipy.sparse import issparse
from sklearn.base import BaseEstimator, ClassifierMixin, MetaEstimatorMixin, _fit_context, clone
from sklearn.model_selection import check_cv
from sklearn.utils import _safe_indexing, indexable
from sklearn.utils._param_validation import HasMethods
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_consistent_length, check_is_fitted, column_or_1d

from .._table import as_frame


class CrossFittedClassifier(MetaEstimatorMixin, ClassifierMixin, BaseEstimator):
    """A classifier fitted once per cross-validation fold: out-of-fold probabilities, and the folds' average.

    ``fit`` fits a clone of ``estimator`` on the training part of each fold
    of ``cv`` and keeps, for every row, the probabilities of the model that
    did not see it (``out_of_fold_proba_``, what
    :func:`~sklearn.model_selection.cross_val_predict` returns). New rows
    get the average of the fold models' probabilities: a bagged ensemble
    of models each fitted on ``(cv - 1) / cv`` of the rows, as AutoGluon's
    bagged models predict. It is how
    :class:`~skmm.MultimodalStackingClassifier` fits its members: the final
    estimator learns from out-of-fold probabilities and then reads the
    probabilities of the very models that made them, averaged, rather than
    those of one model refitted on every row.

    Parameters
    ----------
    estimator : classifier with ``predict_proba``
        Cloned once per fold.
    cv : int, cross-validation generator or iterable, default=5
        The folds (an int: ``StratifiedKFold(cv)``, without shuffling, as
        scikit-learn's ``check_cv`` makes it). Each row must be in a fold's
        test part; a row in several (repeated folds, such as
        :class:`~sklearn.model_selection.RepeatedStratifiedKFold`) gets the
        average of the models that did not see it.

    Attributes
    ----------
    estimators_ : list of estimators
        One fitted clone of ``estimator`` per fold.
    out_of_fold_proba_ : ndarray of shape (n_samples, n_classes)
        Each training row's probabilities from the fold model that did not
        see it (averaged over repeats). A class a fold model never saw has
        probability 0 there.
    classes_ : ndarray of shape (n_classes,)

    See Also
    --------
    sklearn.model_selection.cross_val_predict : the out-of-fold probabilities alone.
    sklearn.ensemble.BaggingClassifier : averaged models on bootstrap samples.

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> from sklearn.linear_model import LogisticRegression
    >>> from skmm.estimators import CrossFittedClassifier
    >>> X, y = load_iris(return_X_y=True)
    >>> model = CrossFittedClassifier(LogisticRegression(max_iter=1000), cv=3).fit(X, y)
    >>> len(model.estimators_), model.out_of_fold_proba_.shape
    (3, (150, 3))
    >>> model.predict(X[:2])
    array([0, 0])
    """

    _parameter_constraints = {"estimator": [HasMethods(["fit", "predict_proba"])], "cv": ["cv_object"]}

    def __init__(self, estimator, cv=5):
        self.estimator = estimator
        self.cv = cv

    @_fit_context(prefer_skip_nested_validation=False)  # the estimator is validated as each clone fits
    def fit(self, X, y):
        """Fit a clone of ``estimator`` per fold and keep each row's out-of-fold probabilities.

        Parameters
        ----------
        X : array-like, pandas.DataFrame or dict of columns
            What ``estimator`` reads (a table of images and texts for a
            stack's member).
        y : array-like of shape (n_samples,)

        Returns
        -------
        self : object
        """
        y, self.classes_ = class_labels(y)
        data, rows = _indexable(X)
        check_consistent_length(data, y)
        self.estimators_ = []
        total, times = np.zeros((len(y), len(self.classes_))), np.zeros(len(y))
        for train, test in check_cv(self.cv, y, classifier=True).split(data, y):
            model = clone(self.estimator).fit(rows(train), y[train])
            self.estimators_.append(model)
            total[test] += in_classes(self.classes_, model, model.predict_proba(rows(test)))
            times[test] += 1
        if not times.all():
            raise ValueError("cv must put every row in a fold's test part: some rows got no out-of-fold "
                             "probabilities")
        self.out_of_fold_proba_ = total / times[:, None]
        return self

    def predict_proba(self, X):
        """The average of the fold models' class probabilities.

        Parameters
        ----------
        X : array-like, pandas.DataFrame or dict of columns

        Returns
        -------
        probabilities : ndarray of shape (n_samples, n_classes)
        """
        check_is_fitted(self)
        return np.mean([in_classes(self.classes_, model, model.predict_proba(X)) for model in self.estimators_], axis=0)

    def predict(self, X):
        """The most probable class of each row (of the averaged probabilities).

        Parameters
        ----------
        X : array-like, pandas.DataFrame or dict of columns

        Returns
        -------
        labels : ndarray of shape (n_samples,)
        """
        check_is_fitted(self)
        return self.classes_[self.predict_proba(X).argmax(axis=1)]

    @property
    def n_features_in_(self):
        """Number of features (columns) the fold models saw in ``fit``, where the estimator records it."""
        check_is_fitted(self)
        return self.estimators_[0].n_features_in_

    @property
    def feature_names_in_(self):
        """The column names the fold models saw in ``fit``, where the estimator records them."""
        check_is_fitted(self)
        return self.estimators_[0].feature_names_in_

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        estimator_tags = self.estimator.__sklearn_tags__() if hasattr(self.estimator, "__sklearn_tags__") else None
        if estimator_tags is not None:  # reads what its estimator reads
            tags.input_tags = estimator_tags.input_tags
        return tags


def class_labels(y, classes=None):
    """``y`` as a 1-D array of class labels, and the sorted classes: those of ``classes`` (all of them, when ``y``
    may lack one) or of ``y``. Raises on targets that are not classes, on labels outside ``classes``, on one class."""
    y = column_or_1d(y, warn=True)
    check_classification_targets(y)
    labels = np.unique(y) if classes is None else np.unique(np.asarray(classes))
    unknown = np.setdiff1d(y, labels)
    if len(unknown):
        raise ValueError(f"y has classes {unknown.tolist()} that are not in classes={labels.tolist()}")
    if len(labels) < 2:
        found = f"one class ({labels.tolist()[0]!r})" if len(labels) else "no class (no rows)"
        raise ValueError(f"y has {found}: a classifier needs at least two")
    return y, labels


def in_classes(classes, model, probabilities):
    """``model``'s probabilities in the columns of ``classes`` (sorted, a superset of ``model.classes_``): 0 for a
    class the model never saw in training."""
    if len(model.classes_) == len(classes):
        return probabilities
    full = np.zeros((len(probabilities), len(classes)))
    full[:, np.searchsorted(classes, model.classes_)] = probabilities
    return full


def _indexable(X):
    """``X`` as something to split (a dict of columns as a DataFrame) and ``rows(indices)`` of it."""
    data = indexable(as_frame(X) if isinstance(X, dict) and not issparse(X) else X)[0]  # dok_matrix is a dict
    return data, lambda indices: _safe_indexing(data, indices)
