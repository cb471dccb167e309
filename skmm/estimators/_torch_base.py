"""The one skeleton of skmm's torch estimators (TorchMLP*, MultimodalNet*): named steps a subclass fills in.

``fit`` runs, in this order:

1. ``_initialize_targets(y)``: the target coder (:class:`~skmm._targets.TargetCoder`)
   named by ``_target_coder()``, fitted; returns the coded targets.
2. ``_initialize_run()``: the seed, the device and an empty history.
3. ``_initialize_module(...)``: the network (``_module_attribute`` names it).
4. ``_split(targets)``: training and validation rows (``early_stopping``).
5. ``_run_stage(...)``, once per training stage, each with the optimizer of
   ``_initialize_optimizer`` and the scheduler of ``_initialize_scheduler``;
   the loop itself is :class:`~skmm._training.Trainer`.
6. ``_finish_fit(...)``: the trivial-baseline check, the history as fitted
   attributes, the float64 copy that predicts.

Predictions go through ``_forward_float64``; pickling through
:class:`~skmm._pickling.DeviceBoundPickling` (weights as numpy).
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.base import BaseEstimator
from sklearn.model_selection import train_test_split
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted

from .._device import resolve_device
from .._pickling import DeviceBoundPickling, torch_weights
from .._training import (EarlyStopping, History, Trainer, batch_length, early_stopping_on, inference_copy,
                         join_batches, make_optimizer, record_history, seeded_devices, standard_policies,
                         warn_if_no_better_than_baseline)


class TorchEstimatorBase(DeviceBoundPickling, BaseEstimator):
    """Fitting, predicting and pickling shared by skmm's torch estimators; see the module docstring."""

    _module_attribute = "module_"
    _rebuilt_on_load = ("_inference_module", "_optimizer")

    # -- the named steps a subclass provides or overrides -------------------------------
    def _target_coder(self):
        """An unfitted target coder for this estimator's targets."""
        raise NotImplementedError

    def _initialize_module(self, *args):
        """Build the network, set it as ``self.<_module_attribute>`` on ``self.device_``."""
        raise NotImplementedError

    def _initialize_optimizer(self, parameters, learning_rate):
        return make_optimizer(self.optimizer, parameters, learning_rate=learning_rate,
                              weight_decay=self.weight_decay, momentum=getattr(self, "momentum", 0.9))

    def _initialize_scheduler(self, optimizer, n_train_rows):
        """A learning-rate schedule stepped after every batch, or None."""
        return None

    # -- the shared steps ------------------------------------------------------------------
    def _initialize_targets(self, y, classes=None):
        self._targets = self._target_coder().fit(y, classes=classes)
        return self._targets.encode(y)

    def _initialize_run(self):
        self._seed = int(check_random_state(self.random_state).randint(np.iinfo(np.int32).max))
        self.device_ = str(resolve_device(self.device))
        self._history = History()

    @property
    def _module(self):
        return getattr(self, self._module_attribute)

    def _split(self, targets, n_rows, hold_out=False):
        """``(train, validation)`` row indices; validation is None without early stopping (or ``hold_out``)."""
        rows = np.arange(n_rows)
        if not (hold_out or early_stopping_on(self.early_stopping, n_rows, self.validation_fraction)):
            return rows, None
        stratify = self._targets.stratify(targets, self.validation_fraction)
        return tuple(train_test_split(rows, test_size=self.validation_fraction, random_state=self._seed,
                                      stratify=stratify))

    def _baseline(self, checked):
        """What the trivial prediction scores on the ``(inputs, targets)`` batches ``checked``, and its margin."""
        targets = join_batches([t for _, t in checked])
        baseline = self._targets.baseline(targets)
        return baseline, self._targets.margin(baseline, batch_length(targets))

    def _run_stage(self, train_batches, checked, *, optimizer, epochs, validating, scheduler=None,
                   stop_early=True):
        """One run of the training loop; ``checked``: the validation batches (or the training rows')."""
        trainer = Trainer(self._module, optimizer, self._targets.loss(self.device_), score=self._targets.score,
                          scheduler=scheduler)
        stopping = EarlyStopping(self.n_iter_no_change, self.tol, *self._baseline(checked)) if stop_early else None
        trainer.run(train_batches, self._history, epochs=epochs, validation_batches=checked if validating else None,
                    policies=standard_policies(verbose=self.verbose, name=type(self).__name__, stopping=stopping,
                                               validating=validating),
                    seed=self._seed, devices=seeded_devices(self.device_))
        return trainer

    def _finish_fit(self, checked=None, validated=False):
        """Warn if the model is no better than the trivial prediction on ``checked``; keep the history and
        the float64 copy that predicts."""
        if checked is not None:
            _, score = Trainer(self._module, None, self._targets.loss(self.device_),
                               score=self._targets.score).validation_step(checked)
            warn_if_no_better_than_baseline(self, score, self._baseline(checked)[0],
                                            "validation" if validated else "training")
        record_history(self, self._history)
        self._inference_module = inference_copy(self._module, self.device_)

    # -- predicting ------------------------------------------------------------------------
    def _check_fitted(self):
        check_is_fitted(self, self._module_attribute)

    def _forward_float64(self, batches):
        """The transformed outputs (probabilities, values) of the float64 copy on ``batches`` of inputs, as
        numpy: an array, or a list of arrays (one per task)."""
        module = self._inference_module
        device = next(module.parameters()).device
        outputs = []
        with torch.inference_mode():
            for inputs in batches:
                outputs.append(self._targets.output_transform(module(_float64(inputs, device))))
        joined = join_batches(outputs)
        return joined.cpu().numpy() if torch.is_tensor(joined) else [part.cpu().numpy() for part in joined]

    # -- pickling ---------------------------------------------------------------------------
    def _restore_module(self, module, weights):
        """Load ``weights`` into the rebuilt ``module``, where this machine can run it."""
        self.device_ = str(resolve_device(self.device_, fallback=True))
        module.load_state_dict(torch_weights(weights))
        module.to(self.device_).eval()
        setattr(self, self._module_attribute, module)
        self._inference_module = inference_copy(module, self.device_)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.non_deterministic = False
        return tags


def _float64(inputs, device):
    """A batch of inputs (numpy array, tensor, or dict of tensors) on ``device``, floats in float64."""
    if isinstance(inputs, dict):
        return {key: _float64(value, device) for key, value in inputs.items()}
    tensor = torch.as_tensor(inputs).to(device)
    return tensor.double() if tensor.is_floating_point() else tensor
