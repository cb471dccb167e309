"""Process-wide registry of loaded backbones.

``GridSearchCV`` and ``cross_val_score`` clone the whole pipeline for every fit.
Encoders therefore never own the weights they load: they ask this registry,
which loads a backbone once per process and hands the same (frozen, eval-mode)
module to every clone. Inference never mutates it, so sharing is safe.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

_MAX_MODELS = 4
_models = OrderedDict()
_lock = threading.Lock()


def get_or_load(key, loader):
    """Return the object stored under ``key``, calling ``loader()`` once if absent."""
    with _lock:
        if key in _models:
            _models.move_to_end(key)
            return _models[key]
    loaded = loader()  # outside the lock: loading can take seconds
    with _lock:
        loaded = _models.setdefault(key, loaded)
        _models.move_to_end(key)
        while len(_models) > _MAX_MODELS:
            _models.popitem(last=False)
    return loaded


def clear_model_registry():
    """Forget every loaded backbone (frees their memory once no encoder holds them)."""
    with _lock:
        _models.clear()


def loaded_model_keys():
    """The keys of the backbones loaded in this process, oldest first."""
    with _lock:
        return list(_models)
