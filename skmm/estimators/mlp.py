"""TorchMLPClassifier and TorchMLPRegressor: multilayer perceptrons in torch, as true sklearn estimators."""

from __future__ import annotations

from numbers import Real

from sklearn.base import ClassifierMixin, RegressorMixin, _fit_context
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.multiclass import type_of_target

from .._targets import ClassTargets, RegressionTargets
from ._mlp_base import _BaseTorchMLP

_COMMON_PARAMETERS = """
    hidden_layer_sizes : int or tuple of int, default=(256,)
        Width of each hidden layer.
    activation : {"relu", "gelu", "tanh", "logistic", "silu"}, default="relu"
    dropout : float, default=0.1
        Dropout after each hidden layer.
    standardize : {"global", "features"} or False, default="global"
        How inputs are scaled inside the estimator (fitted in ``fit``):
        ``"global"`` centres every feature and divides all of them by one
        common scale (the root of the mean feature variance), so inputs of
        any overall scale train alike while the relative variance of the
        features, which on embeddings marks where the signal is, is kept;
        ``"features"`` standardises each feature (as
        :class:`~sklearn.preprocessing.StandardScaler`); False: as given.
    optimizer : {"adam", "adamw", "sgd"}, default="adam"
        ``"sgd"`` uses Nesterov momentum ``momentum``.
    learning_rate : float, default=1e-3
    weight_decay : float, default=0.0
    momentum : float, default=0.9
        Only for ``optimizer="sgd"``.
    batch_size : int, default=64
    max_epochs : int, default=200
    early_stopping : bool or "auto", default="auto"
        Hold out ``validation_fraction`` of the training data (stratified for
        classes), stop when its loss has not improved by ``tol`` for
        ``n_iter_no_change`` epochs, and restore the best epoch's weights. A
        model that does not yet beat the trivial prediction on the held-out
        rows (the majority class; the mean) is never stopped early.
        ``"auto"``: on when the held-out part has at least 100 rows (1,000
        training rows at the default ``validation_fraction``), where it is a
        usable signal. Without it, training stops when the training loss
        stalls the same way.
    validation_fraction : float, default=0.1
    n_iter_no_change : int, default=10
    tol : float, default=1e-4"""

_COMMON_TAIL = """
    device : str, default="auto"
        ``"auto"``: CUDA, then MPS, then CPU. Predictions run in float64 (on
        the CPU for MPS), so a row's output does not depend on the rows it is
        batched with.
    random_state : int, RandomState instance or None, default=None
    verbose : int, default=0
        1: print the losses (and validation score) of every epoch; 2: also a
        progress bar over each epoch's batches.

    Notes
    -----
    A fitted model that scores no better than the trivial prediction (on the
    validation rows, or on the training rows without early stopping) gives a
    :class:`~sklearn.exceptions.ConvergenceWarning`."""

_COMMON_ATTRIBUTES = """
    module_ : torch.nn.Sequential
        The trained network.
    n_iter_ : int
        Epochs run.
    loss_curve_ : list of float
        Training loss per epoch.
    validation_loss_curve_, validation_score_curve_ : list of float
        Validation loss and score (accuracy; R² for regression) per epoch,
        with early stopping.
    best_epoch_ : int or None
        Epoch whose weights were restored (with early stopping).
    input_mean_, input_scale_ : ndarray or None
        The input scaling (``standardize``).
    device_ : str
        Where the network lives.
    n_features_in_ : int
    feature_names_in_ : ndarray of str
        Defined when ``X`` has string column names."""


class TorchMLPClassifier(ClassifierMixin, _BaseTorchMLP):
    __doc__ = f"""Multilayer perceptron classifier trained with torch, on a GPU when there is one.

    Cross-entropy for binary and multiclass targets (any label type: strings
    too), binary cross-entropy for multilabel indicator targets. Fits are
    bit-for-bit repeatable on the CPU for a given ``random_state``.

    Parameters
    ----------{_COMMON_PARAMETERS}
    class_weight : None, "balanced" or dict, default=None
        Weights of the classes in the loss (per label for multilabel targets).{_COMMON_TAIL}

    Attributes
    ----------
    classes_ : ndarray
        The class labels (for multilabel targets: the label indices).{_COMMON_ATTRIBUTES}

    Examples
    --------
    >>> from sklearn.datasets import make_classification
    >>> from skmm import TorchMLPClassifier
    >>> X, y = make_classification(n_samples=200, random_state=0)
    >>> clf = TorchMLPClassifier(hidden_layer_sizes=(32,), max_epochs=50, random_state=0, device="cpu")
    >>> clf.fit(X, y).score(X, y) > 0.9
    True
    """

    _parameter_constraints = {
        **_BaseTorchMLP._parameter_constraints,
        "class_weight": [StrOptions({"balanced"}), dict, None],
    }
    _y_numeric = False

    def __init__(self, hidden_layer_sizes=(256,), *, activation="relu", dropout=0.1, standardize="global",
                 optimizer="adam", learning_rate=1e-3, weight_decay=0.0, momentum=0.9, batch_size=64,
                 max_epochs=200, early_stopping="auto", validation_fraction=0.1, n_iter_no_change=10, tol=1e-4,
                 class_weight=None, device="auto", random_state=None, verbose=0):
        super().__init__(
            hidden_layer_sizes, activation=activation, dropout=dropout, standardize=standardize, optimizer=optimizer,
            learning_rate=learning_rate, weight_decay=weight_decay, momentum=momentum, batch_size=batch_size,
            max_epochs=max_epochs, early_stopping=early_stopping, validation_fraction=validation_fraction,
            n_iter_no_change=n_iter_no_change, tol=tol, device=device, random_state=random_state, verbose=verbose)
        self.class_weight = class_weight

    def _target_coder(self):
        return ClassTargets(self.class_weight)

    def fit(self, X, y):
        super().fit(X, y)
        self.classes_ = self._targets.classes_
        return self

    fit.__doc__ = _BaseTorchMLP.fit.__doc__

    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y, classes=None):
        """Train for one epoch on a batch of data, keeping the current weights.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) or (n_samples, n_labels)
        classes : array-like, optional
            Every class that can ever appear; required on the first call
            (for 1-D targets). Labels outside it raise a ValueError later.

        Returns
        -------
        self : object
        """
        if not hasattr(self, "module_") and classes is None and type_of_target(y) != "multilabel-indicator":
            raise ValueError("classes must be passed on the first call to partial_fit")
        self._partial_fit(X, y, classes=classes)
        self.classes_ = self._targets.classes_
        return self

    def predict_proba(self, X):
        """Class probabilities (for multilabel targets: one probability per label).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes)
        """
        return self._forward_numpy(X)

    def predict(self, X):
        """Predicted labels.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        y : ndarray of shape (n_samples,) or (n_samples, n_labels)
        """
        proba = self.predict_proba(X)
        return self._targets.decode(proba)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        return tags


class TorchMLPRegressor(RegressorMixin, _BaseTorchMLP):
    __doc__ = f"""Multilayer perceptron regressor trained with torch (MSE or Huber loss).

    Targets are standardised internally (and predictions mapped back), so the
    default learning rate suits targets of any scale.

    Parameters
    ----------{_COMMON_PARAMETERS}
    loss : {{"squared_error", "huber"}}, default="squared_error"
    huber_delta : float, default=1.0
        Threshold of the Huber loss, in standardised target units.{_COMMON_TAIL}

    Attributes
    ----------{_COMMON_ATTRIBUTES}

    Examples
    --------
    >>> from sklearn.datasets import make_regression
    >>> from skmm import TorchMLPRegressor
    >>> X, y = make_regression(n_samples=200, n_features=5, noise=1.0, random_state=0)
    >>> reg = TorchMLPRegressor(hidden_layer_sizes=(64,), max_epochs=200, random_state=0, device="cpu")
    >>> reg.fit(X, y).score(X, y) > 0.9
    True
    """

    _parameter_constraints = {
        **_BaseTorchMLP._parameter_constraints,
        "loss": [StrOptions({"squared_error", "huber"})],
        "huber_delta": [Interval(Real, 0, None, closed="neither")],
    }
    _y_numeric = True

    def __init__(self, hidden_layer_sizes=(256,), *, activation="relu", dropout=0.1, standardize="global",
                 optimizer="adam", learning_rate=1e-3, weight_decay=0.0, momentum=0.9, batch_size=64,
                 max_epochs=200, early_stopping="auto", validation_fraction=0.1, n_iter_no_change=10, tol=1e-4,
                 loss="squared_error", huber_delta=1.0, device="auto", random_state=None, verbose=0):
        super().__init__(
            hidden_layer_sizes, activation=activation, dropout=dropout, standardize=standardize, optimizer=optimizer,
            learning_rate=learning_rate, weight_decay=weight_decay, momentum=momentum, batch_size=batch_size,
            max_epochs=max_epochs, early_stopping=early_stopping, validation_fraction=validation_fraction,
            n_iter_no_change=n_iter_no_change, tol=tol, device=device, random_state=random_state, verbose=verbose)
        self.loss = loss
        self.huber_delta = huber_delta

    def _target_coder(self):
        return RegressionTargets(self.loss, self.huber_delta)

    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y):
        """Train for one epoch on a batch of data, keeping the current weights.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) or (n_samples, n_targets)

        Returns
        -------
        self : object
        """
        return self._partial_fit(X, y)

    def predict(self, X):
        """Predicted targets.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        y : ndarray of shape (n_samples,) or (n_samples, n_targets)
        """
        outputs = self._forward_numpy(X)
        return self._targets.decode(outputs)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags
