"""Final estimators of a stack: the log-linear pool, and the default that picks it or the log-odds regression."""

from __future__ import annotations

from numbers import Real

import numpy as np
from scipy.optimize import minimize
from scipy.special import log_softmax
from sklearn.base import BaseEstimator, ClassifierMixin, _fit_context
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline
from sklearn.utils._param_validation import Interval
from sklearn.utils.validation import check_is_fitted, validate_data

from ._cross_fitting import class_labels
from ._stacking_members import log_of_clipped, log_probability_logistic_regression


class LogLinearPoolClassifier(ClassifierMixin, BaseEstimator):
    """Members' class probabilities pooled log-linearly: one learned weight per member, one bias per class.

    Reads the class probabilities of several members side by side (``X``
    is ``np.hstack`` of their ``predict_proba``: member after member, each
    a block of one column per class in the order of ``classes_``) and
    predicts ``softmax(sum_j w_j * log p_j + b)``: a weighted product of
    the members' opinions (a logarithmic opinion pool). It learns one weight
    per member and one bias per class by penalised maximum likelihood, a
    convex problem, where a logistic regression on the same columns learns
    one weight per member, class *and* output class. With many classes and
    few rows those outnumber what the rows pin down and such a stack can
    fall below its best member; the pool cannot overfit that way, but it
    cannot correct one member's confusion of two classes either.

    Parameters
    ----------
    alpha : float, default=1e-3
        L2 penalty on the weights and biases, added to the mean log-loss.
    classes : array-like of shape (n_classes,), default=None
        The classes the columns of each block stand for; ``None``: those of
        ``y``. Give them when ``y`` may lack one (a cross-validation fold
        without a rare class): the blocks keep one column per class.

    Attributes
    ----------
    coef_ : ndarray of shape (n_members,)
        Each member's weight.
    intercept_ : ndarray of shape (n_classes,)
        Each class's bias.
    classes_ : ndarray of shape (n_classes,)
    n_features_in_ : int
        ``n_members * n_classes``.
    n_iter_ : int
        L-BFGS iterations.

    See Also
    --------
    skmm.estimators.default_final_estimator : picks this or the log-odds logistic regression.
    skmm.MultimodalStackingClassifier : whose out-of-fold probabilities it reads.

    Examples
    --------
    >>> import numpy as np
    >>> from skmm.estimators import LogLinearPoolClassifier
    >>> y = np.array([0, 1, 2] * 20)
    >>> good = np.eye(3)[y] * 0.7 + 0.1                       # a member that is right
    >>> noise = np.random.default_rng(0).dirichlet(np.ones(3), size=60)
    >>> pool = LogLinearPoolClassifier().fit(np.hstack([good, noise]), y)
    >>> bool(pool.coef_[0] > abs(pool.coef_[1]))
    True
    >>> pool.predict(np.hstack([good, noise])[:3])
    array([0, 1, 2])
    """

    _parameter_constraints = {"alpha": [Interval(Real, 0, None, closed="left")], "classes": ["array-like", None]}

    def __init__(self, alpha=1e-3, classes=None):
        self.alpha = alpha
        self.classes = classes

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y):
        """Learn the members' weights and the classes' biases.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_members * n_classes)
            The members' probabilities, side by side.
        y : array-like of shape (n_samples,)

        Returns
        -------
        self : object
        """
        X, y = validate_data(self, X, y, dtype=np.float64)
        y, self.classes_ = class_labels(y, self.classes)
        log_odds = self._blocks(X)
        targets = np.eye(len(self.classes_))[np.searchsorted(self.classes_, y)]
        n_members = log_odds.shape[1]
        start = np.concatenate([np.full(n_members, 1.0 / n_members), np.zeros(len(self.classes_))])
        result = minimize(_penalised_log_loss, start, args=(log_odds, targets, self.alpha), jac=True,
                          method="L-BFGS-B")
        self.coef_, self.intercept_ = result.x[:n_members], result.x[n_members:]
        self.n_iter_ = int(result.nit)
        return self

    def _blocks(self, X):
        """``log(clip(X))`` as (n_samples, n_members, n_classes)."""
        n_classes = len(self.classes_)
        if X.shape[1] % n_classes:
            raise ValueError(f"X has {X.shape[1]} columns, not a block of {n_classes} (one per class) per member")
        return log_of_clipped(X).reshape(len(X), -1, n_classes)

    def decision_function(self, X):
        """The pooled log-odds of each class, ``sum_j w_j * log p_j + b``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_members * n_classes)

        Returns
        -------
        scores : ndarray of shape (n_samples, n_classes), or (n_samples,) with two classes
            With two classes, as scikit-learn's classifiers give it: the
            second class's score minus the first's.
        """
        scores = self._pooled_log_odds(X)
        return scores[:, 1] - scores[:, 0] if len(self.classes_) == 2 else scores

    def _pooled_log_odds(self, X):
        check_is_fitted(self)
        X = validate_data(self, X, dtype=np.float64, reset=False)
        return np.einsum("nmk,m->nk", self._blocks(X), self.coef_) + self.intercept_

    def predict_proba(self, X):
        """The pooled class probabilities.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_members * n_classes)

        Returns
        -------
        probabilities : ndarray of shape (n_samples, n_classes)
        """
        return np.exp(log_softmax(self._pooled_log_odds(X), axis=1))

    def predict(self, X):
        """The most probable class of each row.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_members * n_classes)

        Returns
        -------
        labels : ndarray of shape (n_samples,)
        """
        scores = self._pooled_log_odds(X)  # first: it checks that the pool is fitted
        return self.classes_[scores.argmax(axis=1)]


def _penalised_log_loss(parameters, log_odds, targets, alpha):
    """Mean log-loss of the pool plus ``alpha * |parameters|^2``, and its gradient."""
    n_rows, n_members, _ = log_odds.shape
    weights, biases = parameters[:n_members], parameters[n_members:]
    log_probabilities = log_softmax(np.einsum("nmk,m->nk", log_odds, weights) + biases, axis=1)
    residuals = (np.exp(log_probabilities) - targets) / n_rows
    loss = -np.sum(targets * log_probabilities) / n_rows + alpha * parameters @ parameters
    gradient = np.concatenate([np.einsum("nmk,nk->m", log_odds, residuals), residuals.sum(axis=0)])
    return loss, gradient + 2 * alpha * parameters


def default_final_estimator(classes=None, cv=5):
    """The default final estimator: the log-odds logistic regression or the log-linear pool, by cross-validation.

    A :class:`~sklearn.model_selection.GridSearchCV` over the two
    (:func:`log_probability_logistic_regression` first, then
    :class:`LogLinearPoolClassifier`), scored by accuracy on ``cv`` of the
    members' out-of-fold probabilities, and refitted on all of them. The
    regression can correct a member's systematic confusions, and wins by a
    few tenths on a table with few classes and many rows; the pool learns
    one weight per member, and wins by points on a table with many classes
    and few rows, where the regression's weights outnumber what the rows
    pin down (figures in docs/benchmarks.md). It costs a few seconds.

    Parameters
    ----------
    classes : array-like of shape (n_classes,), default=None
        All the classes (the pool's ``classes``: a fold may lack a rare one).
    cv : int, cross-validation generator or iterable, default=5
        The folds of the choice (the stack passes its own).

    Returns
    -------
    final_estimator : GridSearchCV
        Its ``best_params_["final"]`` names the winner, ``cv_results_`` the
        scores of both.

    Examples
    --------
    >>> from skmm.estimators import default_final_estimator
    >>> search = default_final_estimator(classes=[0, 1, 2])
    >>> [type(candidate).__name__ for candidate in search.param_grid["final"]]
    ['Pipeline', 'LogLinearPoolClassifier']
    """
    candidates = [log_probability_logistic_regression(), LogLinearPoolClassifier(classes=classes)]
    return GridSearchCV(Pipeline([("final", candidates[0])]), {"final": candidates}, scoring="accuracy", cv=cv)


def final_estimator_name(final_estimator):
    """The class name of a final estimator: of a pipeline's last step, or of the candidate a fitted search chose.

    Parameters
    ----------
    final_estimator : estimator
        A final estimator, a pipeline, or a fitted
        :func:`default_final_estimator` (its ``best_params_["final"]``).

    Returns
    -------
    name : str

    Examples
    --------
    >>> from skmm.estimators import final_estimator_name, log_probability_logistic_regression
    >>> final_estimator_name(log_probability_logistic_regression())
    'LogisticRegression'
    """
    if hasattr(final_estimator, "best_params_") and "final" in final_estimator.best_params_:
        final_estimator = final_estimator.best_params_["final"]
    return type(final_estimator[-1] if isinstance(final_estimator, Pipeline) else final_estimator).__name__
