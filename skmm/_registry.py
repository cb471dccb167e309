"""Process-wide registries of objects that are costly to make and never change once made.

``GridSearchCV`` and ``cross_val_score`` clone the whole pipeline for every fit.
Encoders therefore never own the weights they load: they ask the model
registry, which loads a backbone once per process and hands the same (frozen,
eval-mode) module to every clone. Inference never mutates it, so sharing is safe.

Higher layers keep memos of their own (the fusion's fitted projections) made
by :func:`in_process_memo`: :func:`skmm.clear_cache` forgets them with the
embedding cache without importing, or knowing, the modules that made them.
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


# The memos made by in_process_memo, which clear_cache empties: each registers itself when its module is imported
# (a module never imported has nothing to forget).
_memos = []


def in_process_memo(max_entries):
    """A :class:`BoundedRegistry` that :func:`skmm.clear_cache` empties with the embedding cache.

    Parameters
    ----------
    max_entries : int
        How many of the most recently used objects it keeps.

    Returns
    -------
    memo : BoundedRegistry

    Examples
    --------
    >>> from skmm._registry import clear_memos, in_process_memo
    >>> squares = in_process_memo(max_entries=2)
    >>> squares.get_or_make(3, lambda: 9)
    9
    >>> clear_memos()
    >>> squares.keys()
    []
    """
    memo = BoundedRegistry(max_entries)
    _memos.append(memo)
    return memo


def clear_memos():
    """Empty every memo made by :func:`in_process_memo` (what :func:`skmm.clear_cache` does first).

    Examples
    --------
    >>> from skmm._registry import clear_memos
    >>> clear_memos()
    """
    for memo in _memos:
        memo.clear()
