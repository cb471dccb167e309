"""Embedding caches keyed by content.

A key is ``blake2b(encoder fingerprint + item content)``: the fingerprint holds
everything that changes an embedding (model, weights, preprocessing,
precision), the content is the file's bytes, the pixels or the text. Row
positions and file names never enter a key, so a changed file is embedded
again and one image under two names is embedded once.
"""

from __future__ import annotations

import hashlib
import os
import socket
import threading
import time
from collections import OrderedDict
from pathlib import Path

import joblib
import numpy as np

from ._registry import BoundedRegistry, clear_memos
from ._store import SQLiteStore

_DIGEST_SIZE = 16


def content_digest(data):
    """blake2b digest (hex) of some bytes."""
    return hashlib.blake2b(data, digest_size=_DIGEST_SIZE).hexdigest()


_file_digests = BoundedRegistry(max_entries=1_000_000)


def file_digest(path):
    """Digest of a file's bytes, remembered while the file is unchanged.

    A grid search looks every image up once per fit; re-reading and hashing
    each file every time cost more than the lookups. The memo is keyed by
    the file's identity and state (path, inode, size, modification time), so
    an edited or replaced file is hashed again; the digest itself is still of
    the content, so one image under two names shares one cache entry.
    """
    stat = os.stat(path)
    identity = (os.fspath(path), stat.st_ino, stat.st_size, stat.st_mtime_ns)

    def hash_content():
        with open(path, "rb") as handle:
            return content_digest(handle.read())

    return _file_digests.get_or_make(identity, hash_content)


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


class ClaimCoordinator:
    """Lets processes that share a disk cache split the work instead of repeating it.

    Before computing a key, a process claims it: it creates ``claims/<key>.claim``
    with ``O_EXCL`` (atomic: one process wins). Keys claimed by another
    process are awaited and then read from the cache. Claims are taken a chunk
    at a time, so two processes that need the same rows share them out. A
    claim is broken when its process is gone (same host) or it is older than
    ``stale_seconds`` (another host).
    """

    def __init__(self, cache, directory, stale_seconds=1800.0, poll_seconds=0.1):
        self.cache = cache
        self.directory = Path(directory)
        self.stale_seconds = stale_seconds
        self.poll_seconds = poll_seconds

    def _path(self, key):
        return self.directory / f"{key}.claim"

    def _try_claim(self, key):
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "w") as handle:
            handle.write(f"{socket.gethostname()}:{os.getpid()}")  # read now: a forked child claims as itself
        return True

    def _is_stale(self, key):
        path = self._path(key)
        try:
            owner = path.read_text()
            age = time.time() - path.stat().st_mtime
        except (FileNotFoundError, OSError):
            return False
        host, _, pid = owner.partition(":")
        if host == socket.gethostname() and pid.isdigit():
            try:
                os.kill(int(pid), 0)
            except ProcessLookupError:
                return True
            except PermissionError:
                pass
        return age > self.stale_seconds

    def release(self, keys):
        for key in keys:
            self._path(key).unlink(missing_ok=True)

    def schedule(self, keys, chunk, known_missing=False):
        """Yield ``("found", {key: value})`` and ``("compute", [keys])`` until every key is served.

        The caller computes, stores and then :meth:`release`-s each ``compute`` batch.
        ``known_missing``: the caller has just looked ``keys`` up, so the first round claims
        without reading the cache again.
        """
        remaining = list(keys)
        look = not known_missing
        while remaining:
            if look:
                found = self.cache.get_many(remaining)
                if found:
                    yield "found", found
                    remaining = [key for key in remaining if key not in found]
            look = True
            mine = []
            for key in remaining:
                if len(mine) >= chunk:
                    break
                if self._try_claim(key):
                    mine.append(key)
            if mine:
                # Another process may have stored a key and released its claim between our lookup and our
                # claim (it stores before it releases): read the claimed keys once more before computing.
                stored = self.cache.get_many(mine)
                if stored:
                    self.release(stored)
                    yield "found", stored
                taken = set(mine)
                remaining = [key for key in remaining if key not in taken]
                mine = [key for key in mine if key not in stored]
                if mine:
                    yield "compute", mine
                continue
            if remaining:  # all claimed elsewhere: wait for them, taking over abandoned claims
                time.sleep(self.poll_seconds)
                for key in remaining:
                    if self._is_stale(key):
                        self.release([key])


class LayeredCache:
    """A memory cache in front of a disk store (:class:`skmm._store.SQLiteStore`)."""

    def __init__(self, memory, disk):
        self.memory, self.disk = memory, disk
        # Claims live only while their keys are computed: at most a chunk per process at a time.
        self.coordinator = ClaimCoordinator(self, disk.directory / "claims")

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
        _disk_caches[directory] = LayeredCache(_memory_cache, SQLiteStore(directory))
    return _disk_caches[directory]


def is_cacheable(key):
    """Keys of items whose content could not be digested are ``("row", position)``: computed, never stored."""
    return not isinstance(key, tuple)


def fetch_or_compute(cache, keys, compute, chunk):
    """The value of every key: from ``cache``, else computed once by ``compute(batch_of_keys)``.

    ``compute`` returns ``(values, failures)``, two dicts by key; computed
    values of cacheable keys are stored. With a disk cache shared by
    processes (``n_jobs``, dask workers), each key is computed by one process:
    keys another process has claimed are awaited and read, not recomputed.

    Returns
    -------
    values : dict
        Key -> value, for every key found or computed.
    failures : dict
        Key -> error message, for the keys ``compute`` could not compute.
    """
    keys = list(keys)
    values = cache.get_many([key for key in keys if is_cacheable(key)]) if cache is not None else {}
    failures = {}

    def run(batch):
        computed, failed = compute(batch)
        failures.update(failed)
        values.update(computed)
        if cache is not None:
            new_entries = {key: value for key, value in computed.items() if is_cacheable(key)}
            if new_entries:
                cache.put_many(new_entries)

    missing = [key for key in keys if key not in values]
    coordinator = getattr(cache, "coordinator", None)
    if coordinator is None:
        if missing:
            run(missing)
        return values, failures
    uncacheable = [key for key in missing if not is_cacheable(key)]
    if uncacheable:
        run(uncacheable)
    # The keys were just looked up: the schedule need not look again first.
    for action, batch in coordinator.schedule([key for key in missing if is_cacheable(key)], chunk=chunk,
                                              known_missing=True):
        if action == "compute":
            try:
                run(batch)
            finally:
                coordinator.release(batch)
        else:
            values.update(batch)
    return values, failures


def clear_cache(cache="auto"):
    """Empty a cache: the in-process one (default) or a cache directory.

    The objects remembered in this process by other means (the fusion's
    fitted projections: see :func:`skmm._registry.in_process_memo`) are
    forgotten too.

    Examples
    --------
    >>> from skmm import clear_cache
    >>> clear_cache("memory")
    """
    clear_memos()
    resolved = resolve_cache(cache)
    if resolved is not None:
        resolved.clear()
