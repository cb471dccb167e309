"""Embedding caches keyed by content.

A key is ``blake2b(encoder fingerprint + item content)``: the fingerprint holds
everything that changes an embedding (model, weights, preprocessing,
precision), the content is the file's bytes, the pixels or the text. Row
positions and file names never enter a key, so a changed file is embedded
again and one image under two names is embedded once.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import tempfile
import threading
from collections import OrderedDict
from pathlib import Path

import joblib
import numpy as np

_DIGEST_SIZE = 16


def content_digest(data):
    """blake2b digest (hex) of some bytes."""
    return hashlib.blake2b(data, digest_size=_DIGEST_SIZE).hexdigest()


def make_key(fingerprint, digest):
    return hashlib.blake2b(f"{fingerprint}:{digest}".encode(), digest_size=_DIGEST_SIZE).hexdigest()


class MemoryCache:
    """Least-recently-used in-process cache with a bound in bytes."""

    def __init__(self, max_bytes=2 * 1024**3):
        self.max_bytes = int(max_bytes)
        self._entries = OrderedDict()
        self._nbytes = 0
        self._lock = threading.Lock()

    def get_many(self, keys):
        found = {}
        with self._lock:
            for key in keys:
                if key in self._entries:
                    self._entries.move_to_end(key)
                    found[key] = self._entries[key]
        return found

    def put_many(self, entries):
        with self._lock:
            for key, value in entries.items():
                value = np.array(value, dtype=np.float32, copy=True)
                value.setflags(write=False)
                if key in self._entries:
                    self._nbytes -= self._entries.pop(key).nbytes
                self._entries[key] = value
                self._nbytes += value.nbytes
            while self._nbytes > self.max_bytes and self._entries:
                self._nbytes -= self._entries.popitem(last=False)[1].nbytes

    def clear(self):
        with self._lock:
            self._entries.clear()
            self._nbytes = 0

    def __len__(self):
        return len(self._entries)


class DiskCache:
    """One file per embedding under ``directory``; safe across processes.

    Writes go to a temporary file in the same folder and are renamed into
    place (atomic on POSIX and Windows), so two processes writing one key never
    leave a torn file. Each file starts with a digest of its payload: a corrupt
    or truncated entry is detected, removed and recomputed.
    """

    def __init__(self, directory):
        self.directory = Path(directory)

    def _path(self, key):
        return self.directory / key[:2] / f"{key}.npy"

    def get_many(self, keys):
        found = {}
        for key in keys:
            path = self._path(key)
            try:
                blob = path.read_bytes()
            except (FileNotFoundError, NotADirectoryError):
                continue
            value = self._decode(blob)
            if value is None:
                path.unlink(missing_ok=True)  # corrupt: recompute it
                continue
            found[key] = value
        return found

    @staticmethod
    def _decode(blob):
        checksum, payload = blob[:_DIGEST_SIZE], blob[_DIGEST_SIZE:]
        if len(checksum) != _DIGEST_SIZE or hashlib.blake2b(payload, digest_size=_DIGEST_SIZE).digest() != checksum:
            return None
        try:
            return np.load(io.BytesIO(payload), allow_pickle=False)
        except ValueError:
            return None

    def put_many(self, entries):
        for key, value in entries.items():
            buffer = io.BytesIO()
            np.save(buffer, np.asarray(value, dtype=np.float32), allow_pickle=False)
            payload = buffer.getvalue()
            blob = hashlib.blake2b(payload, digest_size=_DIGEST_SIZE).digest() + payload
            path = self._path(key)
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
            try:
                with os.fdopen(fd, "wb") as handle:
                    handle.write(blob)
                os.replace(tmp, path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise

    def clear(self):
        shutil.rmtree(self.directory, ignore_errors=True)

    def __len__(self):
        return sum(1 for _ in self.directory.glob("*/*.npy"))


class LayeredCache:
    """A memory cache in front of a disk cache."""

    def __init__(self, memory, disk):
        self.memory, self.disk = memory, disk

    def get_many(self, keys):
        found = self.memory.get_many(keys)
        missing = [key for key in keys if key not in found]
        if missing:
            from_disk = self.disk.get_many(missing)
            self.memory.put_many(from_disk)
            found.update(from_disk)
        return found

    def put_many(self, entries):
        self.disk.put_many(entries)
        self.memory.put_many(entries)

    def clear(self):
        self.memory.clear()
        self.disk.clear()


_memory_cache = MemoryCache(int(os.environ.get("SKMM_MEMORY_CACHE_BYTES", 2 * 1024**3)))
_disk_caches = {}


def resolve_cache(cache):
    """Map an encoder's ``cache`` parameter to a cache object (or None).

    ``"auto"``: a disk cache in ``$SKMM_CACHE_DIR`` when that variable is set,
    else the in-process memory cache. ``"memory"``: the in-process cache only.
    ``None`` or ``False``: no cache. A path or a :class:`joblib.Memory`: a disk
    cache there (under ``<location>/skmm_embeddings`` for a Memory), with the
    memory cache in front.
    """
    if cache is None or cache is False:
        return None
    if isinstance(cache, str) and cache == "auto":
        directory = os.environ.get("SKMM_CACHE_DIR")
        return _memory_cache if not directory else resolve_cache(directory)
    if isinstance(cache, str) and cache == "memory":
        return _memory_cache
    if isinstance(cache, joblib.Memory):
        if cache.location is None:
            return _memory_cache
        directory = Path(cache.location) / "skmm_embeddings"
    elif isinstance(cache, (str, os.PathLike)):
        directory = Path(cache)
    else:
        raise TypeError(
            "cache must be 'auto', 'memory', None, a directory path or a joblib.Memory, "
            f"got {type(cache).__name__}"
        )
    directory = directory.expanduser().resolve()
    if directory not in _disk_caches:
        _disk_caches[directory] = LayeredCache(_memory_cache, DiskCache(directory))
    return _disk_caches[directory]


def clear_cache(cache="auto"):
    """Empty a cache: the in-process one (default) or a cache directory.

    Examples
    --------
    >>> from skmm import clear_cache
    >>> clear_cache("memory")
    """
    resolved = resolve_cache(cache)
    if resolved is not None:
        resolved.clear()
