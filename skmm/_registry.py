"""Process-wide registries of objects that are costly to make and never change once made.

``GridSearchCV`` and ``cross_val_score`` clone the whole pipeline for every fit.
Encoders therefore never own the weights they load: they ask the model
registry, which loads a backbone once per process and hands the same (frozen,
eval-mode) module to every clone. Inference never mutates it, so sharing is safe.
"""

from __future__ import annotations

import threading
from collections import OrderedDict


class BoundedRegistry:
    """The ``max_entries`` most recently used objects, each made once by its factory."""

    def __init__(self, max_entries):
        self.max_entries = max_entries
        self._entries = OrderedDict()
        self._lock = threading.Lock()

    def get_or_make(self, key, factory):
        """Return the object stored under ``key``, calling ``factory()`` once if absent."""
        with self._lock:
            if key in self._entries:
                self._entries.move_to_end(key)
                return self._entries[key]
        made = factory()  # outside the lock: loading a model can take seconds
        with self._lock:
            made = self._entries.setdefault(key, made)
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
        return made

    def clear(self):
        with self._lock:
            self._entries.clear()

    def keys(self):
        """The keys held, least recently used first."""
        with self._lock:
            return list(self._entries)


_models = BoundedRegistry(max_entries=4)


def get_or_load(key, loader):
    """The backbone stored under ``key``, loaded by ``loader()`` once per process."""
    return _models.get_or_make(key, loader)


def clear_model_registry():
    """Forget every loaded backbone (frees their memory once no encoder holds them)."""
    _models.clear()


def loaded_model_keys():
    """The keys of the backbones loaded in this process, oldest first."""
    return _models.keys()
