"""The training and prediction that TorchMLPClassifier and TorchMLPRegressor share."""

from __future__ import annotations

from numbers import Integral, Real

import numpy as np
import torch
from sklearn.base import BaseEstimator
from sklearn.model_selection import train_test_split
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, Options, StrOptions
from sklearn.utils.validation import check_is_fitted, validate_data
from torch import nn

from .._device import resolve_device
from ._training import (TRAINING_CONSTRAINTS, History, Stopping, Trainer, early_stopping_on, inference_copy,
                        make_optimizer, record_history, seeded_devices, warn_if_no_better_than_baseline)

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


class _BaseTorchMLP(BaseEstimator):
    """Shared fitting and prediction; see the two public classes for the parameters."""

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
        self._validate_params()
        X, y = validate_data(self, X, y, dtype=np.float32, multi_output=True, y_numeric=self._y_numeric,
                             reset=True)
        self._targets = self._target_coder().fit(y)
        targets = self._targets.encode(y)
        self._fit_input_scaling(X)
        self._init_training()
        X_train, t_train, validation = X, targets, None
        if early_stopping_on(self.early_stopping, len(X), self.validation_fraction):
            stratify = self._targets.stratify(targets, self.validation_fraction)
            X_train, X_val, t_train, t_val = train_test_split(
                X, targets, test_size=self.validation_fraction, random_state=self._seed, stratify=stratify)
            validation = (X_val, t_val)
        self._train(X_train, t_train, validation, epochs=self.max_epochs, stop_early=True)
        return self

    def _partial_fit(self, X, y, classes=None):
        first_call = not hasattr(self, "module_")
        if first_call:
            self._validate_params()
        X, y = validate_data(self, X, y, dtype=np.float32, multi_output=True, y_numeric=self._y_numeric,
                             reset=first_call)
        if first_call:
            self._targets = self._target_coder().fit(y, classes=classes, incremental=True)
            self._fit_input_scaling(X)  # from the first batch: later batches are assumed alike
            self._init_training()
        else:
            self._targets.check_classes(classes)
        self._train(X, self._targets.encode(y), None, epochs=1, stop_early=False)
        return self

    def _init_training(self):
        self._seed = int(check_random_state(self.random_state).randint(np.iinfo(np.int32).max))
        self.device_ = str(resolve_device(self.device))
        self._architecture = (int(self.n_features_in_), self._hidden_sizes(), int(self._targets.n_outputs),
                              self.activation, float(self.dropout))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self._seed)
            self.module_ = build_mlp(*self._architecture).to(self.device_)
        self._optimizer = self._make_optimizer()
        self._generator = torch.Generator().manual_seed(self._seed)
        self._history = History()

    def _make_optimizer(self):
        return make_optimizer(self.optimizer, self.module_.parameters(), learning_rate=self.learning_rate,
                              weight_decay=self.weight_decay, momentum=self.momentum)

    def _tensor(self, array, dtype=torch.float32):
        return torch.as_tensor(np.asarray(array), dtype=dtype, device=self.device_)

    def _train(self, X, targets, validation, *, epochs, stop_early):
        X_t, t_t = self._tensor(self._scaled(X)), self._tensor(targets, self._targets.dtype)
        n, batch_size = len(X_t), self.batch_size

        def train_batches():
            order = torch.randperm(n, generator=self._generator).to(self.device_)
            for start in range(0, n, batch_size):
                index = order[start:start + batch_size]
                yield X_t[index], t_t[index]

        checked = [(X_t, t_t)]
        if validation is not None:
            checked = [(self._tensor(self._scaled(validation[0])), self._tensor(validation[1], self._targets.dtype))]
        baseline = self._targets.baseline(checked[0][1])
        loss = self._targets.loss(self.device_)
        trainer = Trainer(self.module_, self._optimizer, loss, score=self._targets.score, verbose=self.verbose,
                          name=type(self).__name__)
        trainer.run(train_batches, self._history, epochs=epochs,
                    validation_batches=checked if validation is not None else None,
                    stopping=Stopping(self.n_iter_no_change, self.tol, baseline,
                                      self._targets.margin(baseline, len(checked[0][1]))) if stop_early else None,
                    seed=self._seed, devices=seeded_devices(self.device_))
        if stop_early:
            _, score = trainer.validation_step(checked)
            warn_if_no_better_than_baseline(self, score, baseline,
                                            "validation" if validation is not None else "training")
        record_history(self, self._history)
        self._inference_module = inference_copy(self.module_, self.device_)

    # -- prediction ----------------------------------------------------------
    def _forward_numpy(self, X):
        check_is_fitted(self, "module_")
        X = validate_data(self, X, dtype=np.float32, reset=False)
        module = self._inference_module
        device = next(module.parameters()).device
        outputs = []
        with torch.inference_mode():
            for start in range(0, X.shape[0], 4096):
                chunk = torch.as_tensor(self._scaled(X[start:start + 4096], np.float64), device=device)
                outputs.append(self._targets.output_transform(module(chunk)))
        return torch.cat(outputs).cpu().numpy()

    # -- persistence: fitted on a GPU, usable on a CPU; plain numpy for skops --------
    def __getstate__(self):
        # A copy: object.__getstate__ returns the live __dict__, which must not change.
        state = dict(super().__getstate__())
        module = state.pop("module_", None)
        state.pop("_inference_module", None)  # rebuilt on load from the weights
        state.pop("_optimizer", None)  # rebuilt on load; its moments restart (see partial_fit)
        if module is not None:
            # Weights as numpy arrays, the network as its architecture: no torch object in the
            # state, so skops.io can persist it and a CPU-only machine can load a GPU fit.
            state["_module_weights"] = {k: v.detach().cpu().numpy() for k, v in module.state_dict().items()}
        generator = state.pop("_generator", None)
        if generator is not None:
            state["_generator_state"] = generator.get_state().numpy()
        return state

    def __setstate__(self, state):
        weights = state.pop("_module_weights", None)
        generator_state = state.pop("_generator_state", None)
        state = self._upgrade_state(state)
        super().__setstate__(state)
        if weights is None:
            return
        self.device_ = str(resolve_device(self.device_, fallback=True))
        self.module_ = build_mlp(*self._architecture)
        self.module_.load_state_dict({k: torch.from_numpy(np.asarray(v)) for k, v in weights.items()})
        self.module_.to(self.device_).eval()
        self._optimizer = self._make_optimizer()
        self._generator = torch.Generator()
        if generator_state is not None:
            self._generator.set_state(torch.from_numpy(np.asarray(generator_state, dtype=np.uint8)))
        self._inference_module = inference_copy(self.module_, self.device_)

    def _upgrade_state(self, state):
        """A state pickled by skmm 0.1 (flat training attributes, no input scaling) in today's layout."""
        if "_history" in state or "_architecture" not in state:
            return state
        state.setdefault("standardize", False)
        state.setdefault("input_mean_", None)
        state.setdefault("input_scale_", None)
        state["_history"] = History(loss=list(state.get("loss_curve_", [])),
                                    validation_loss=list(state.get("validation_loss_curve_", [])),
                                    n_epochs=state.get("n_iter_", 0), best_epoch=state.get("best_epoch_", None))
        state.setdefault("validation_score_curve_", [])
        state["_targets"] = self._coder.from_legacy_state(state)
        return state

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.non_deterministic = False
        return tags
