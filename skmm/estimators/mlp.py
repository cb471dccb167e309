"""TorchMLPClassifier and TorchMLPRegressor: multilayer perceptrons in torch, as true sklearn estimators."""

from __future__ import annotations

import copy
import numbers

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import LabelEncoder
from sklearn.utils import check_random_state
from sklearn.utils.class_weight import compute_class_weight
from sklearn.utils.multiclass import check_classification_targets, type_of_target
from sklearn.utils.validation import check_is_fitted, column_or_1d, validate_data
from torch import nn

from .._device import resolve_device

_ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU, "tanh": nn.Tanh, "logistic": nn.Sigmoid, "silu": nn.SiLU}
_OPTIMIZERS = ("adam", "adamw", "sgd")


def _build_network(n_in, hidden_layer_sizes, n_out, activation, dropout):
    layers, width = [], n_in
    for size in hidden_layer_sizes:
        layers += [nn.Linear(width, size), _ACTIVATIONS[activation]()]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        width = size
    layers.append(nn.Linear(width, n_out))
    return nn.Sequential(*layers)


class _BaseTorchMLP(BaseEstimator):
    """Shared training loop; see the two public classes for the parameters."""

    _y_numeric = False

    def __init__(
        self,
        hidden_layer_sizes=(256,),
        *,
        activation="relu",
        dropout=0.1,
        optimizer="adam",
        learning_rate=1e-3,
        weight_decay=0.0,
        momentum=0.9,
        batch_size=64,
        max_epochs=200,
        early_stopping=False,
        validation_fraction=0.1,
        n_iter_no_change=10,
        tol=1e-4,
        device="auto",
        random_state=None,
        verbose=0,
    ):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.dropout = dropout
        self.optimizer = optimizer
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.momentum = momentum
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.tol = tol
        self.device = device
        self.random_state = random_state
        self.verbose = verbose

    # -- hooks for the subclasses -------------------------------------------
    def _encode_targets(self, y, fitting):
        raise NotImplementedError

    def _loss(self):
        raise NotImplementedError

    # -- validation ----------------------------------------------------------
    def _validate_params(self):
        sizes = self.hidden_layer_sizes
        sizes = (sizes,) if isinstance(sizes, numbers.Integral) else tuple(sizes)
        if any(not isinstance(s, numbers.Integral) or s < 1 for s in sizes):
            raise ValueError(f"hidden_layer_sizes must be positive integers, got {self.hidden_layer_sizes!r}")
        if self.activation not in _ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(_ACTIVATIONS)}, got {self.activation!r}")
        if self.optimizer not in _OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {_OPTIMIZERS}, got {self.optimizer!r}")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout!r}")
        for name in ("batch_size", "max_epochs", "n_iter_no_change"):
            value = getattr(self, name)
            if not isinstance(value, numbers.Integral) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if not 0 < self.validation_fraction < 1:
            raise ValueError(f"validation_fraction must be in (0, 1), got {self.validation_fraction!r}")
        if self.learning_rate <= 0 or self.weight_decay < 0:
            raise ValueError("learning_rate must be > 0 and weight_decay >= 0")
        return sizes

    def _make_optimizer(self, parameters):
        if self.optimizer == "sgd":
            return torch.optim.SGD(parameters, lr=self.learning_rate, momentum=self.momentum,
                                   weight_decay=self.weight_decay, nesterov=self.momentum > 0)
        cls = torch.optim.Adam if self.optimizer == "adam" else torch.optim.AdamW
        return cls(parameters, lr=self.learning_rate, weight_decay=self.weight_decay)

    # -- training ------------------------------------------------------------
    def fit(self, X, y):
        """Train the network from scratch.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)

        Returns
        -------
        self : object
        """
        sizes = self._validate_params()
        X, y = validate_data(self, X, y, dtype=np.float32, multi_output=True, y_numeric=self._y_numeric, reset=True)
        targets = self._encode_targets(y, fitting=True)
        self._init_training(sizes)
        X_train, X_val, t_train, t_val = X, None, targets, None
        if self.early_stopping:
            stratify = targets if self._stratify_validation(targets) else None
            X_train, X_val, t_train, t_val = train_test_split(
                X, targets, test_size=self.validation_fraction, random_state=self._seed, stratify=stratify)
        self._train(X_train, t_train, X_val, t_val, epochs=self.max_epochs, stop_early=True)
        return self

    def _stratify_validation(self, targets):
        return False

    def _init_training(self, sizes):
        self._seed = int(check_random_state(self.random_state).randint(np.iinfo(np.int32).max))
        self.device_ = str(resolve_device(self.device))
        self._architecture = (int(self.n_features_in_), tuple(int(s) for s in sizes), int(self._n_outputs),
                              self.activation, float(self.dropout))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self._seed)
            self.module_ = _build_network(*self._architecture).to(self.device_)
        self._optimizer = self._make_optimizer(self.module_.parameters())
        self._generator = torch.Generator().manual_seed(self._seed)
        self.loss_curve_, self.validation_loss_curve_ = [], []
        self.n_iter_ = 0
        self.best_epoch_ = None

    def _tensor(self, array, dtype=torch.float32):
        return torch.as_tensor(np.asarray(array), dtype=dtype, device=self.device_)

    def _train(self, X, targets, X_val, t_val, *, epochs, stop_early):
        device = torch.device(self.device_)
        X_t, t_t = self._tensor(X), self._tensor(targets, self._target_dtype)
        has_val = X_val is not None
        if has_val:
            Xv_t, tv_t = self._tensor(X_val), self._tensor(t_val, self._target_dtype)
        loss_fn = self._loss()
        best_loss, best_state, stale = np.inf, None, 0
        n = X_t.shape[0]
        # Dropout draws from the global generator: fork it so that fitting is
        # repeatable and leaves the caller's random state untouched.
        devices = [device.index or 0] if device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(self._seed + self.n_iter_)
            for _ in range(epochs):
                self.module_.train()
                order = torch.randperm(n, generator=self._generator).to(device)
                total = 0.0
                for start in range(0, n, self.batch_size):
                    index = order[start:start + self.batch_size]
                    self._optimizer.zero_grad(set_to_none=True)
                    loss = loss_fn(self.module_(X_t[index]), t_t[index])
                    loss.backward()
                    self._optimizer.step()
                    total += float(loss.detach()) * len(index)
                self.n_iter_ += 1
                epoch_loss = total / n
                self.loss_curve_.append(epoch_loss)
                monitored = epoch_loss
                if has_val:
                    self.module_.eval()
                    with torch.no_grad():
                        monitored = float(loss_fn(self.module_(Xv_t), tv_t))
                    self.validation_loss_curve_.append(monitored)
                if self.verbose:
                    extra = f", validation loss {monitored:.5f}" if has_val else ""
                    print(f"epoch {self.n_iter_}: loss {epoch_loss:.5f}{extra}")
                if not stop_early:
                    continue
                if monitored < best_loss - self.tol:
                    best_loss, stale = monitored, 0
                    if has_val:
                        best_state = copy.deepcopy(self.module_.state_dict())
                        self.best_epoch_ = self.n_iter_
                else:
                    stale += 1
                    if stale >= self.n_iter_no_change:
                        break
        if best_state is not None:
            self.module_.load_state_dict(best_state)  # restore the best weights seen on validation
        self.module_.eval()

    def _forward_numpy(self, X):
        check_is_fitted(self, "module_")
        X = validate_data(self, X, dtype=np.float32, reset=False)
        outputs = []
        self.module_.eval()
        with torch.inference_mode():
            for start in range(0, X.shape[0], 4096):
                outputs.append(self._output_transform(self.module_(self._tensor(X[start:start + 4096]))))
        return torch.cat(outputs).float().cpu().numpy()

    def _output_transform(self, logits):
        return logits

    # -- persistence: fitted on a GPU, usable on a CPU; plain numpy for skops --------
    def __getstate__(self):
        # A copy: object.__getstate__ returns the live __dict__, which must not change.
        state = dict(super().__getstate__())
        module = state.pop("module_", None)
        if module is not None:
            # Weights as numpy arrays, the network as its architecture: no torch object in the
            # state, so skops.io can persist it and a CPU-only machine can load a GPU fit.
            state["_module_weights"] = {k: v.detach().cpu().numpy() for k, v in module.state_dict().items()}
        generator = state.pop("_generator", None)
        if generator is not None:
            state["_generator_state"] = generator.get_state().numpy()
        weights = state.pop("_loss_weights", None)
        state["_loss_weights"] = None if weights is None else weights.detach().cpu().numpy()
        state.pop("_optimizer", None)  # rebuilt on load; its moments restart (see partial_fit)
        return state

    def __setstate__(self, state):
        weights = state.pop("_module_weights", None)
        generator_state = state.pop("_generator_state", None)
        loss_weights = state.pop("_loss_weights", None)
        super().__setstate__(state)
        if weights is None:
            return
        self.device_ = str(resolve_device(self.device_, fallback=True))
        self.module_ = _build_network(*self._architecture)
        self.module_.load_state_dict({k: torch.from_numpy(np.asarray(v)) for k, v in weights.items()})
        self.module_.to(self.device_).eval()
        self._optimizer = self._make_optimizer(self.module_.parameters())
        self._generator = torch.Generator()
        if generator_state is not None:
            self._generator.set_state(torch.from_numpy(np.asarray(generator_state, dtype=np.uint8)))
        self._loss_weights = None if loss_weights is None else torch.as_tensor(loss_weights, device=self.device_)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.non_deterministic = False
        return tags


class TorchMLPClassifier(ClassifierMixin, _BaseTorchMLP):
    """Multilayer perceptron classifier trained with torch, on a GPU when there is one.

    Cross-entropy for binary and multiclass targets (any label type: strings
    too), binary cross-entropy for multilabel indicator targets. Fits are
    bit-for-bit repeatable on the CPU for a given ``random_state``.

    Parameters
    ----------
    hidden_layer_sizes : int or tuple of int, default=(256,)
        Width of each hidden layer.
    activation : {"relu", "gelu", "tanh", "logistic", "silu"}, default="relu"
    dropout : float, default=0.1
        Dropout after each hidden layer.
    optimizer : {"adam", "adamw", "sgd"}, default="adam"
        ``"sgd"`` uses Nesterov momentum ``momentum``.
    learning_rate : float, default=1e-3
    weight_decay : float, default=0.0
    momentum : float, default=0.9
        Only for ``optimizer="sgd"``.
    batch_size : int, default=64
    max_epochs : int, default=200
    early_stopping : bool, default=False
        Hold out ``validation_fraction`` of the training data (stratified),
        stop when its loss has not improved by ``tol`` for ``n_iter_no_change``
        epochs, and restore the best weights. Without it, training stops when
        the training loss stalls the same way.
    validation_fraction : float, default=0.1
    n_iter_no_change : int, default=10
    tol : float, default=1e-4
    class_weight : None, "balanced" or dict, default=None
        Weights of the classes in the loss (per label for multilabel targets).
    device : str, default="auto"
        ``"auto"``: CUDA, then MPS, then CPU.
    random_state : int, RandomState instance or None, default=None
    verbose : int, default=0
        Print the loss of every epoch.

    Attributes
    ----------
    classes_ : ndarray
        The class labels (for multilabel targets: the label indices).
    module_ : torch.nn.Sequential
        The trained network.
    n_iter_ : int
        Epochs run.
    loss_curve_ : list of float
        Training loss per epoch.
    validation_loss_curve_ : list of float
        Validation loss per epoch (with early stopping).
    best_epoch_ : int or None
        Epoch whose weights were restored (with early stopping).
    device_ : str
        Where the network lives.
    n_features_in_ : int
    feature_names_in_ : ndarray of str
        Defined when ``X`` has string column names.

    Examples
    --------
    >>> from sklearn.datasets import make_classification
    >>> from skmm import TorchMLPClassifier
    >>> X, y = make_classification(n_samples=200, random_state=0)
    >>> clf = TorchMLPClassifier(hidden_layer_sizes=(32,), max_epochs=50, random_state=0, device="cpu")
    >>> clf.fit(X, y).score(X, y) > 0.9
    True
    """

    def __init__(
        self,
        hidden_layer_sizes=(256,),
        *,
        activation="relu",
        dropout=0.1,
        optimizer="adam",
        learning_rate=1e-3,
        weight_decay=0.0,
        momentum=0.9,
        batch_size=64,
        max_epochs=200,
        early_stopping=False,
        validation_fraction=0.1,
        n_iter_no_change=10,
        tol=1e-4,
        class_weight=None,
        device="auto",
        random_state=None,
        verbose=0,
    ):
        super().__init__(
            hidden_layer_sizes, activation=activation, dropout=dropout, optimizer=optimizer,
            learning_rate=learning_rate, weight_decay=weight_decay, momentum=momentum, batch_size=batch_size,
            max_epochs=max_epochs, early_stopping=early_stopping, validation_fraction=validation_fraction,
            n_iter_no_change=n_iter_no_change, tol=tol, device=device, random_state=random_state, verbose=verbose,
        )
        self.class_weight = class_weight

    def _encode_targets(self, y, fitting):
        if fitting:
            check_classification_targets(y)
            self._target_kind = type_of_target(y)
            if self._target_kind == "multilabel-indicator":
                y = np.asarray(y)
                self.classes_ = np.arange(y.shape[1])
                self._n_outputs = y.shape[1]
                return y.astype(np.float32)
            if np.ndim(y) == 2 and np.shape(y)[1] == 1:
                y = column_or_1d(y, warn=True)
            elif np.ndim(y) == 2:
                raise ValueError("y must be 1-D (or a multilabel indicator matrix); "
                                 "multiclass-multioutput targets are not supported")
            self._label_encoder = LabelEncoder().fit(y)
            self.classes_ = self._label_encoder.classes_
            if len(self.classes_) < 2:
                raise ValueError(f"the training data must contain at least 2 classes, got 1 class: {self.classes_}")
            self._n_outputs = len(self.classes_)
            return self._label_encoder.transform(y)
        if self._target_kind == "multilabel-indicator":
            y = np.asarray(y)
            if y.ndim != 2 or y.shape[1] != len(self.classes_):
                raise ValueError(f"y must be an indicator matrix with {len(self.classes_)} columns")
            return y.astype(np.float32)
        y = np.asarray(y)
        unseen = np.setdiff1d(y, self.classes_)
        if unseen.size:
            raise ValueError(f"y contains labels not seen in the first fit: {unseen.tolist()} "
                             f"(known classes: {self.classes_.tolist()})")
        return self._label_encoder.transform(y)

    @property
    def _target_dtype(self):
        return torch.float32 if self._target_kind == "multilabel-indicator" else torch.long

    def _class_weights(self, targets):
        if self.class_weight is None:
            return None
        if self._target_kind == "multilabel-indicator":
            positives = targets.sum(axis=0)
            if self.class_weight == "balanced":
                weights = (len(targets) - positives) / np.maximum(positives, 1)
            else:
                weights = np.array([self.class_weight.get(c, 1.0) for c in self.classes_])
            return torch.as_tensor(weights, dtype=torch.float32, device=self.device_)
        weights = compute_class_weight(self.class_weight, classes=self.classes_,
                                       y=self._label_encoder.inverse_transform(targets))
        return torch.as_tensor(weights, dtype=torch.float32, device=self.device_)

    def _train(self, X, targets, X_val, t_val, **kwargs):
        self._loss_weights = self._class_weights(targets)
        return super()._train(X, targets, X_val, t_val, **kwargs)

    def _loss(self):
        if self._target_kind == "multilabel-indicator":
            return nn.BCEWithLogitsLoss(pos_weight=self._loss_weights)
        return nn.CrossEntropyLoss(weight=self._loss_weights)

    def _stratify_validation(self, targets):
        if self._target_kind == "multilabel-indicator":
            return False
        counts = np.bincount(targets)
        n_val = int(np.ceil(self.validation_fraction * len(targets)))
        return counts.min() >= 2 and n_val >= len(counts)

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
        first_call = not hasattr(self, "module_")
        if first_call:
            sizes = self._validate_params()
            X, y = validate_data(self, X, y, dtype=np.float32, multi_output=True, reset=True)
            if type_of_target(y) != "multilabel-indicator":
                if classes is None:
                    raise ValueError("classes must be passed on the first call to partial_fit")
                check_classification_targets(y)
                self._target_kind = type_of_target(np.asarray(classes))
                self._label_encoder = LabelEncoder().fit(np.asarray(classes))
                self.classes_ = self._label_encoder.classes_
                self._n_outputs = len(self.classes_)
                targets = self._encode_targets(y, fitting=False)
            else:
                targets = self._encode_targets(y, fitting=True)
            self._init_training(sizes)
        else:
            X, y = validate_data(self, X, y, dtype=np.float32, multi_output=True, reset=False)
            if classes is not None and not np.array_equal(np.unique(classes), self.classes_):
                raise ValueError(f"classes {list(classes)} differ from those of the first call {self.classes_.tolist()}")
            targets = self._encode_targets(y, fitting=False)
        self._train(X, targets, None, None, epochs=1, stop_early=False)
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

    def _output_transform(self, logits):
        if self._target_kind == "multilabel-indicator":
            return torch.sigmoid(logits.float())
        return torch.softmax(logits.float(), dim=1)

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
        if self._target_kind == "multilabel-indicator":
            return (proba >= 0.5).astype(int)
        return self.classes_[np.argmax(proba, axis=1)]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        return tags


class TorchMLPRegressor(RegressorMixin, _BaseTorchMLP):
    """Multilayer perceptron regressor trained with torch (MSE or Huber loss).

    Targets are standardised internally (and predictions mapped back), so the
    default learning rate suits targets of any scale. Parameters are those of
    :class:`TorchMLPClassifier`, without ``class_weight`` and with:

    Parameters
    ----------
    loss : {"squared_error", "huber"}, default="squared_error"
    huber_delta : float, default=1.0
        Threshold of the Huber loss, in standardised target units.

    Attributes
    ----------
    module_ : torch.nn.Sequential
    n_iter_ : int
    loss_curve_ : list of float
    n_features_in_ : int

    Examples
    --------
    >>> from sklearn.datasets import make_regression
    >>> from skmm import TorchMLPRegressor
    >>> X, y = make_regression(n_samples=200, n_features=5, noise=1.0, random_state=0)
    >>> reg = TorchMLPRegressor(hidden_layer_sizes=(64,), max_epochs=200, random_state=0, device="cpu")
    >>> reg.fit(X, y).score(X, y) > 0.9
    True
    """

    def __init__(
        self,
        hidden_layer_sizes=(256,),
        *,
        activation="relu",
        dropout=0.1,
        optimizer="adam",
        learning_rate=1e-3,
        weight_decay=0.0,
        momentum=0.9,
        batch_size=64,
        max_epochs=200,
        early_stopping=False,
        validation_fraction=0.1,
        n_iter_no_change=10,
        tol=1e-4,
        loss="squared_error",
        huber_delta=1.0,
        device="auto",
        random_state=None,
        verbose=0,
    ):
        super().__init__(
            hidden_layer_sizes, activation=activation, dropout=dropout, optimizer=optimizer,
            learning_rate=learning_rate, weight_decay=weight_decay, momentum=momentum, batch_size=batch_size,
            max_epochs=max_epochs, early_stopping=early_stopping, validation_fraction=validation_fraction,
            n_iter_no_change=n_iter_no_change, tol=tol, device=device, random_state=random_state, verbose=verbose,
        )
        self.loss = loss
        self.huber_delta = huber_delta

    _y_numeric = True
    _target_dtype = torch.float32

    def _encode_targets(self, y, fitting):
        y = np.asarray(y, dtype=np.float64)
        if fitting:
            if self.loss not in ("squared_error", "huber"):
                raise ValueError(f"loss must be 'squared_error' or 'huber', got {self.loss!r}")
            self._y_1d = y.ndim == 1
            y2 = y.reshape(len(y), -1)
            self._y_mean = y2.mean(axis=0)
            self._y_scale = y2.std(axis=0)
            self._y_scale[self._y_scale == 0] = 1.0
            self._n_outputs = y2.shape[1]
        return ((y.reshape(len(y), -1) - self._y_mean) / self._y_scale).astype(np.float32)

    def _loss(self):
        return nn.MSELoss() if self.loss == "squared_error" else nn.HuberLoss(delta=self.huber_delta)

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
        first_call = not hasattr(self, "module_")
        if first_call:
            sizes = self._validate_params()
        X, y = validate_data(self, X, y, dtype=np.float32, multi_output=True, y_numeric=True, reset=first_call)
        targets = self._encode_targets(y, fitting=first_call)
        if first_call:
            self._init_training(sizes)
        self._train(X, targets, None, None, epochs=1, stop_early=False)
        return self

    def predict(self, X):
        """Predicted targets.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        y : ndarray of shape (n_samples,) or (n_samples, n_targets)
        """
        output = self._forward_numpy(X).astype(np.float64) * self._y_scale + self._y_mean
        return output.ravel() if self._y_1d else output

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags
