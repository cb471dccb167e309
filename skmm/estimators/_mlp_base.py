"""The training and prediction that TorchMLPClassifier and TorchMLPRegressor share."""

from __future__ import annotations

from numbers import Integral, Real

import numpy as np
import torch
from sklearn.base import _fit_context
from sklearn.utils._param_validation import Interval, Options, StrOptions
from sklearn.utils.validation import validate_data
from torch import nn

from .._compat import upgrade_mlp_state
from .._pickling import restored_generator
from .._training import TRAINING_CONSTRAINTS
from ._torch_base import TorchEstimatorBase

_ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU, "tanh": nn.Tanh, "logistic": nn.Sigmoid, "silu": nn.SiLU}


def build_mlp(n_in, hidden_layer_sizes, n_out, activation, dropout):
    """Linear -> activation (-> dropout) per hidden layer, then a linear output layer."""
    layers, width = [], n_in
    for size in hidden_layer_sizes:
        layers += [nn.Linear(width, size), _ACTIVATIONS[activation]()]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        width = size
    layers.append(nn.Linear(width, n_out))
    return nn.Sequential(*layers)


class _BaseTorchMLP(TorchEstimatorBase):
    """Shared fitting and prediction; see the two public classes for the parameters."""

    _device_bound = {"module_": "_module_weights", "_generator": "_generator_state"}

    _parameter_constraints = {
        **TRAINING_CONSTRAINTS,
        "activation": [StrOptions(set(_ACTIVATIONS))],
        "standardize": [StrOptions({"global", "features"}), Options(bool, {False})],
        "momentum": [Interval(Real, 0, 1, closed="left")],
    }

    def __init__(self, hidden_layer_sizes=(256,), *, activation="relu", dropout=0.1, standardize="global",
                 optimizer="adam", learning_rate=1e-3, weight_decay=0.0, momentum=0.9, batch_size=64,
                 max_epochs=200, early_stopping="auto", validation_fraction=0.1, n_iter_no_change=10, tol=1e-4,
                 device="auto", random_state=None, verbose=0):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.dropout = dropout
        self.standardize = standardize
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

    def _hidden_sizes(self):
        sizes = self.hidden_layer_sizes
        sizes = (sizes,) if isinstance(sizes, Integral) else tuple(sizes)
        if any(not isinstance(s, Integral) or s < 1 for s in sizes):
            raise ValueError(f"hidden_layer_sizes must be positive integers, got {self.hidden_layer_sizes!r}")
        return sizes

    # -- input scaling -------------------------------------------------------
    def _fit_input_scaling(self, X):
        self.input_mean_ = self.input_scale_ = None
        if self.standardize is False:
            return
        self.input_mean_ = X.mean(axis=0)
        variance = X.var(axis=0)
        scale = np.sqrt(variance) if self.standardize == "features" else np.sqrt([variance.mean()])
        self.input_scale_ = np.where(scale > 1e-12, scale, 1.0)

    def _scaled(self, X, dtype=np.float32):
        X = np.asarray(X, dtype=np.float64)
        if self.input_mean_ is not None:
            X = (X - self.input_mean_) / self.input_scale_
        return X.astype(dtype, copy=False)

    # -- training ------------------------------------------------------------
    @_fit_context(prefer_skip_nested_validation=True)
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
        X, y = validate_data(self, X, y, dtype=np.float32, multi_output=True, y_numeric=self._y_numeric,
                             reset=True)
        targets = self._initialize(X, y)
        train, validation = self._split(targets, len(X))
        self._train(X[train], targets[train], None if validation is None else (X[validation], targets[validation]),
                    epochs=self.max_epochs, stop_early=True)
        return self

    def _partial_fit(self, X, y, classes=None):
        first_call = not hasattr(self, "module_")
        X, y = validate_data(self, X, y, dtype=np.float32, multi_output=True, y_numeric=self._y_numeric,
                             reset=first_call)
        if first_call:
            targets = self._initialize(X, y, classes)  # input scaling from the first batch: later ones alike
        else:
            self._targets.check_classes(classes)
            targets = self._targets.encode(y)
        self._train(X, targets, None, epochs=1, stop_early=False)
        return self

    def _initialize(self, X, y, classes=None):
        """The named setup steps, in order; returns the coded targets."""
        targets = self._initialize_targets(y, classes)
        self._fit_input_scaling(X)
        self._initialize_run()
        self._initialize_module()
        self._optimizer = self._initialize_optimizer(self.module_.parameters(), self.learning_rate)
        self._generator = torch.Generator().manual_seed(self._seed)
        return targets

    def _initialize_module(self):
        self._architecture = (int(self.n_features_in_), self._hidden_sizes(), int(self._targets.n_outputs),
                              self.activation, float(self.dropout))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self._seed)
            self.module_ = build_mlp(*self._architecture).to(self.device_)

    def _tensor(self, array, dtype=torch.float32):
        return torch.as_tensor(np.asarray(array), dtype=dtype, device=self.device_)

    def _train(self, X, targets, validation, *, epochs, stop_early):
        X_t, t_t = self._tensor(self._scaled(X)), self._targets.tensors(targets, self.device_)
        n, batch_size = len(X_t), self.batch_size

        def train_batches():
            order = torch.randperm(n, generator=self._generator).to(self.device_)
            for start in range(0, n, batch_size):
                index = order[start:start + batch_size]
                yield X_t[index], t_t[index]

        checked = [(X_t, t_t)]
        if validation is not None:
            checked = [(self._tensor(self._scaled(validation[0])), self._targets.tensors(validation[1], self.device_))]
        self._run_stage(train_batches, checked, optimizer=self._optimizer, epochs=epochs,
                        validating=validation is not None, stop_early=stop_early)
        self._finish_fit(checked if stop_early else None, validated=validation is not None)

    # -- prediction ----------------------------------------------------------
    def _forward_numpy(self, X):
        self._check_fitted()
        X = validate_data(self, X, dtype=np.float32, reset=False)
        return self._forward_float64(self._scaled(X[start:start + 4096], np.float64)
                                     for start in range(0, X.shape[0], 4096))

    # -- persistence: the network as its weights, rebuilt from its architecture ------------
    def _upgraded_state(self, state):
        return upgrade_mlp_state(state, regression=self._y_numeric)

    def _load_device_bound(self, saved):
        if "module_" not in saved:
            return
        self._restore_module(build_mlp(*self._architecture), saved["module_"])
        self._optimizer = self._initialize_optimizer(self.module_.parameters(), self.learning_rate)
        self._generator = restored_generator(saved.get("_generator"))
