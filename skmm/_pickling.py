"""One way to pickle an object that holds torch state: fitted on a GPU, loadable on a CPU, readable by skops.

A class lists its device-bound attributes in ``_device_bound`` (attribute →
the key its numpy form is saved under) and the attributes it rebuilds on load
in ``_rebuilt_on_load`` (inference copies, optimizers). The pickled state then
holds no torch object: modules are saved as their weights (numpy arrays),
generators as their state; skops can persist it and a machine without the
fitting device can load it. On load, :meth:`DeviceBoundPickling._upgraded_state`
brings an older version's state up to date (see ``skmm._compat``) and
:meth:`DeviceBoundPickling._load_device_bound` rebuilds the torch objects
from what was saved, where this machine can run them.
"""

from __future__ import annotations

import numpy as np
import torch


def numpy_weights(module):
    """A module's ``state_dict`` as numpy arrays on the CPU."""
    # Fresh C-order copies: a channels-last weight and its unpickled copy must hash alike (joblib hashes
    # strides, even those of length-1 axes), and no array shares memory with the live module.
    return {key: np.array(value.detach().cpu().numpy(), order="C") for key, value in module.state_dict().items()}


def torch_weights(weights):
    """Numpy weights (as saved by :func:`numpy_weights`) back as tensors, for ``load_state_dict``."""
    return {key: torch.from_numpy(np.asarray(value)) for key, value in weights.items()}


def restored_generator(saved):
    """A ``torch.Generator`` in the state saved by :meth:`DeviceBoundPickling._save_device_bound`."""
    generator = torch.Generator()
    if saved is not None:
        generator.set_state(torch.from_numpy(np.asarray(saved, dtype=np.uint8)))
    return generator


class DeviceBoundPickling:
    """Mixin: ``__getstate__`` / ``__setstate__`` driven by ``_device_bound`` and ``_rebuilt_on_load``."""

    _device_bound = {}
    _rebuilt_on_load = ()

    def __getstate__(self):
        # A copy: object.__getstate__ returns the live __dict__, which must not change.
        state = dict(super().__getstate__())
        for name in self._rebuilt_on_load:
            state.pop(name, None)
        for name, key in self._device_bound.items():
            value = state.pop(name, None)
            saved = None if value is None else self._save_device_bound(name, value)
            if saved is not None:
                state[key] = saved
        return state

    def __setstate__(self, state):
        saved = {name: state.pop(key) for name, key in self._device_bound.items() if key in state}
        super().__setstate__(self._upgraded_state(state))
        self._load_device_bound(saved)

    def _save_device_bound(self, name, value):
        """The numpy form of one device-bound attribute (None: nothing to save)."""
        if isinstance(value, torch.Generator):
            return value.get_state().numpy()
        return numpy_weights(value)

    def _upgraded_state(self, state):
        """``state`` as this version lays it out (an older version may have saved another layout)."""
        return state

    def _load_device_bound(self, saved):
        """Rebuild the device-bound attributes from ``saved`` (attribute → what was saved)."""
