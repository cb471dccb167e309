"""Everything that reads what an older skmm wrote (pickles, skops files, caches), in one place.

skmm 0.2 reads what skmm 0.1 saved. Each path below says what it upgrades
and the version it can be removed in (``REMOVE_IN``): from then on, files
saved by 0.1 must be re-saved with 0.2 first. This module is in the lowest
layer: it works on state dicts and paths, and imports nothing above it.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.abc
import importlib.util
import inspect
import io
import sys

import numpy as np

REMOVE_IN = "0.3.0"

# Modules that moved: files name the old paths. 0.1: skmm._alignment, skmm._gating; 0.2 development
# versions (still numbered 0.1.0): the coders and the loop lived in skmm.estimators.
MOVED_MODULES = {
    "skmm._alignment": "skmm.fusion._alignment",
    "skmm._gating": "skmm.fusion._gating",
    "skmm.estimators._targets": "skmm._targets",
    "skmm.estimators._training": "skmm._training",
}

# The types those files name at their old paths, which skmm.persistence.load trusts too.
LEGACY_TRUSTED_TYPES = (
    "skmm._alignment.CCAAlignment",
    "skmm._alignment.PCAProjection",
    "skmm._gating.ModalityGate",
    "skmm.estimators._targets.TaskTargets",
    "skmm.estimators._targets.ClassTargets",
    "skmm.estimators._targets.RegressionTargets",
    "skmm.estimators._training.History",
)


class _MovedModules(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Imports an old module path (pickle and skops import a class's saved path) as the module that holds
    its classes now, on demand: ``import skmm`` stays light."""

    def find_spec(self, name, path=None, target=None):
        return importlib.util.spec_from_loader(name, self) if name in MOVED_MODULES else None

    def create_module(self, spec):
        return importlib.import_module(MOVED_MODULES[spec.name])

    def exec_module(self, module):
        pass  # the module that now holds the classes is already imported


def install_moved_modules():
    """Let the old module paths of :data:`MOVED_MODULES` import (once per process)."""
    if not any(isinstance(finder, _MovedModules) for finder in sys.meta_path):
        sys.meta_path.append(_MovedModules())


def upgrade_mlp_state(state, regression):
    """A TorchMLP state pickled by skmm 0.1 (flat training attributes, no input scaling) in today's layout."""
    if "_history" in state or "_architecture" not in state:
        return state
    from ._training import History  # here, not at the top: ``import skmm`` must not import torch

    state.setdefault("standardize", False)
    state.setdefault("input_mean_", None)
    state.setdefault("input_scale_", None)
    state["_history"] = History(loss=list(state.get("loss_curve_", [])),
                                validation_loss=list(state.get("validation_loss_curve_", [])),
                                n_epochs=state.get("n_iter_", 0), best_epoch=state.get("best_epoch_", None))
    state.setdefault("validation_score_curve_", [])
    state["_targets"] = _legacy_regression_coder(state) if regression else _legacy_class_coder(state)
    return state


def _legacy_class_coder(state):
    from ._targets import ClassTargets

    coder = ClassTargets(state.get("class_weight"))
    coder.kind = state.pop("_target_kind")
    coder.classes_ = state["classes_"]
    coder.n_outputs = state.pop("_n_outputs")
    if "_label_encoder" in state:
        coder.label_encoder_ = state.pop("_label_encoder")
    weights = state.pop("_loss_weights", None)
    coder.loss_weights_ = None if weights is None else np.asarray(weights, dtype=np.float32)
    return coder


def _legacy_regression_coder(state):
    from ._targets import RegressionTargets

    coder = RegressionTargets(state.get("loss", "squared_error"), state.get("huber_delta", 1.0))
    coder.one_d = state.pop("_y_1d")
    coder.mean_, coder.scale_ = state.pop("_y_mean"), state.pop("_y_scale")
    coder.n_outputs = state.pop("_n_outputs")
    state.pop("_loss_weights", None)
    return coder


def network_architecture(architecture):
    """A MultimodalNet's saved architecture; saved before block scaling, it standardised each feature."""
    return {"standardize": "features", **architecture}


def upgrade_net_state(state):
    """A MultimodalNet state saved before ``target_type`` (each column's kind was guessed, as ``"auto"`` does)
    or before ``probe_epochs`` (its first stage trained ``max_epochs``; a refit now trains it as documented)
    or ``layer_decay`` (every block at one rate, as 1.0 gives)."""
    state.setdefault("target_type", "auto")
    state.setdefault("layer_decay", 1.0)
    state.setdefault("probe_epochs", 200)
    return state


def upgrade_stacking_state(state):
    """A MultimodalStackingClassifier state saved before ``refit``: its members were refitted on every row."""
    state.setdefault("refit", True)
    return state


def upgrade_encoder_state(cls, state):
    """An encoder's state with every ``__init__`` parameter added since it was saved at its default (what
    the older code did); skmm 0.1 also took ``tta="none"`` for no test-time augmentation."""
    for name, parameter in inspect.signature(cls.__init__).parameters.items():
        if name != "self" and name not in state and parameter.default is not inspect.Parameter.empty:
            state[name] = parameter.default
    if state.get("tta") == "none":
        state["tta"] = None
    return state


def upgrade_fusion_state(state):
    """A ModalityFusion state from skmm 0.1: it pickled a name memo and scaled neither its blocks nor its
    output (no means and scales: ModalityFusion passes such blocks and outputs through as they are)."""
    state.pop("_block_names", None)
    state.setdefault("output_mean_", None)
    state.setdefault("block_means_", {})
    state.setdefault("block_scales_", {})
    state.setdefault("output_scale_", None)
    return state


class LegacyCacheEntries:
    """The entries of a cache directory written by skmm 0.1: one ``.npy`` file per key, a digest in front,
    in two-letter folders. The store moves them into its SQLite files as they are asked for."""

    def __init__(self, directory, digest_size):
        self.directory = directory
        self.digest_size = digest_size
        self._present = None

    def present(self):
        if self._present is None:  # looked for once
            self._present = next(self.directory.glob("??/*.npy"), None) is not None
        return self._present

    def forget(self):
        self._present = None

    def _path(self, key):
        return self.directory / key[:2] / f"{key}.npy"

    def read(self, keys):
        """The readable, intact entries among ``keys``."""
        found = {}
        for key in keys:
            path = self._path(key)
            try:
                blob = path.read_bytes()
            except (FileNotFoundError, NotADirectoryError):
                continue
            checksum, payload = blob[:self.digest_size], blob[self.digest_size:]
            if hashlib.blake2b(payload, digest_size=self.digest_size).digest() == checksum:
                try:
                    found[key] = np.load(io.BytesIO(payload), allow_pickle=False)
                except ValueError:
                    pass
        return found

    def discard(self, keys):
        for key in keys:
            self._path(key).unlink(missing_ok=True)
