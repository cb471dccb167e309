"""The disk side of the embedding cache: a few SQLite files instead of one file per embedding.

Keys are hex digests, so their first character spreads them evenly over
:data:`N_SHARDS` SQLite databases (``shard-0.sqlite`` ... ``shard-f.sqlite``,
each with its write-ahead log): a cache of ten million embeddings is a few
dozen files. SQLite is what makes it safe: a transaction is atomic, several
processes may read and write at once (WAL mode; writers wait for each other),
and a process killed mid-write leaves the last committed state. Every entry
also carries a digest of its bytes, checked on each read: an entry that does
not match is deleted and computed again, never served.

WAL needs shared memory between the processes, so one store serves the
processes of one machine (a multi-process search, the workers of a local Dask
cluster). On a cluster of machines, give each one a local cache folder.

Caches written by skmm 0.1 (one ``<key[:2]>/<key>.npy`` file per entry) are
still read; an entry found there moves into the store.
"""

from __future__ import annotations

import hashlib
import os
import random
import shutil
import sqlite3
import threading
import time
import warnings
from pathlib import Path

import numpy as np

from ._compat import LegacyCacheEntries
from ._messages import caller_stacklevel

N_SHARDS = 16
_DIGEST_SIZE = 16
_QUERY_KEYS = 500  # keys per SELECT: well under SQLite's limit on bound parameters
_SCHEMA = ("CREATE TABLE IF NOT EXISTS entries (key BLOB PRIMARY KEY, dtype TEXT NOT NULL, shape TEXT NOT NULL, "
           "checksum BLOB NOT NULL, payload BLOB NOT NULL)")


_BUSY_CODES = {5, 6}  # SQLITE_BUSY, SQLITE_LOCKED
# SQLite's result codes for a file that is damaged or is not a database: the only errors that drop a shard.
_DAMAGE_CODES = {11, 26}  # SQLITE_CORRUPT, SQLITE_NOTADB


def _is_damage(error):
    code = getattr(error, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in _DAMAGE_CODES
    return "malformed" in str(error) or "not a database" in str(error)


def _set_up(connection, patience=600.0):
    """WAL mode, durability and the table, retried while another process sets up the same new file.

    SQLite answers "database is locked" at once, without waiting out the connection's timeout, when two
    processes switch one new file to WAL together; the switch is persistent, so only a file's first
    opening can meet it.
    """
    deadline = time.monotonic() + patience
    while True:
        try:
            if connection.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                connection.execute("PRAGMA journal_mode=WAL")
            # Committed transactions survive a killed process; only a power cut may lose the last ones.
            connection.execute("PRAGMA synchronous=NORMAL")
            connection.execute(_SCHEMA)
            return
        except sqlite3.OperationalError as error:
            busy = getattr(error, "sqlite_errorcode", 5) & 0xFF in _BUSY_CODES
            if not busy or time.monotonic() > deadline:
                raise
            time.sleep(0.01 + 0.05 * random.random())


def _checksum(dtype, shape, payload):
    return hashlib.blake2b(f"{dtype}|{shape}|".encode() + payload, digest_size=_DIGEST_SIZE).digest()


class SQLiteStore:
    """Content-keyed arrays in ``directory``, shared by the processes of one machine.

    Examples
    --------
    >>> import tempfile, numpy as np
    >>> store = SQLiteStore(tempfile.mkdtemp())
    >>> store.put_many({"ab12": np.ones(3, dtype=np.float32)})
    >>> store.get_many(["ab12", "cd34"])["ab12"]
    array([1., 1., 1.], dtype=float32)
    """

    def __init__(self, directory):
        self.directory = Path(directory)
        self._connections = {}
        self._inherited = []
        self._pid = None
        self._lock = threading.Lock()
        self._legacy = LegacyCacheEntries(self.directory, _DIGEST_SIZE)

    # -- connections: one per shard and process (a forked child opens its own) ----------
    def _connection(self, shard):
        if self._pid != os.getpid():
            # A forked child must neither use nor close its parent's connections (SQLite's advice): it keeps
            # them, untouched, and opens its own.
            if self._pid is not None:
                self._inherited.append(self._connections)
            self._connections, self._pid = {}, os.getpid()
        connection = self._connections.get(shard)
        if connection is None:
            self.directory.mkdir(parents=True, exist_ok=True)
            connection = sqlite3.connect(self.directory / f"shard-{shard}.sqlite", timeout=600,
                                         isolation_level=None, check_same_thread=False)
            _set_up(connection)
            self._connections[shard] = connection
        return connection

    @staticmethod
    def _by_shard(keys):
        shards = {}
        for key in keys:
            shards.setdefault(key[0].lower(), []).append(key)
        return shards

    # -- reading and writing -----------------------------------------------------------
    def get_many(self, keys):
        found = {}
        with self._lock:
            for shard, shard_keys in self._by_shard(keys).items():
                try:
                    found.update(self._read_shard(shard, shard_keys))
                except sqlite3.DatabaseError as error:
                    if not _is_damage(error):
                        raise
                    self._drop_damaged_shard(shard, error)
        if len(found) < len(keys) and self._legacy.present():
            missing = [key for key in keys if key not in found]
            moved = self._legacy.read(missing)
            if moved:
                self.put_many(moved)
            self._legacy.discard(missing)  # moved, or corrupt: recomputed by the caller
            found.update(moved)
        return found

    def _read_shard(self, shard, keys):
        connection = self._connection(shard)
        found, corrupt = {}, []
        for start in range(0, len(keys), _QUERY_KEYS):
            chunk = [bytes.fromhex(key) for key in keys[start:start + _QUERY_KEYS]]
            rows = connection.execute(f"SELECT key, dtype, shape, checksum, payload FROM entries WHERE key IN "
                                      f"({','.join('?' * len(chunk))})", chunk).fetchall()
            for key, dtype, shape, checksum, payload in rows:
                if _checksum(dtype, shape, payload) != checksum:
                    corrupt.append(key)
                    continue
                found[key.hex()] = np.frombuffer(payload, dtype=dtype).reshape(
                    tuple(int(n) for n in shape.split(",") if n))
        for key in corrupt:  # computed again by the caller
            connection.execute("DELETE FROM entries WHERE key = ?", (key,))
        return found

    def _drop_damaged_shard(self, shard, error):
        """A shard SQLite cannot read (a damaged disk, a file overwritten): its entries are computed again."""
        warnings.warn(f"embedding cache {self.directory}: shard {shard} is damaged ({error}); its entries will "
                      "be computed again", RuntimeWarning, stacklevel=caller_stacklevel())
        connection = self._connections.pop(shard, None)
        if connection is not None:
            connection.close()
        for suffix in ("", "-wal", "-shm"):
            Path(f"{self.directory / f'shard-{shard}.sqlite'}{suffix}").unlink(missing_ok=True)

    def put_many(self, entries):
        with self._lock:
            for shard, keys in self._by_shard(entries).items():
                rows = []
                for key in keys:
                    value = np.ascontiguousarray(entries[key], dtype=np.float32)
                    dtype, shape, payload = value.dtype.str, ",".join(map(str, value.shape)), value.tobytes()
                    rows.append((bytes.fromhex(key), dtype, shape, _checksum(dtype, shape, payload), payload))
                try:
                    self._write_shard(shard, rows)
                except sqlite3.DatabaseError as error:
                    if not _is_damage(error):
                        raise
                    self._drop_damaged_shard(shard, error)
                    self._write_shard(shard, rows)

    def _write_shard(self, shard, rows):
        connection = self._connection(shard)
        connection.execute("BEGIN IMMEDIATE")
        try:
            # An entry already there holds the same value (same key): the first writer's stays.
            connection.executemany("INSERT OR IGNORE INTO entries VALUES (?, ?, ?, ?, ?)", rows)
            connection.execute("COMMIT")
        except BaseException:
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            raise

    def __len__(self):
        with self._lock:
            return sum(self._connection(shard).execute("SELECT COUNT(*) FROM entries").fetchone()[0]
                       for shard in self._existing_shards())

    def _existing_shards(self):
        return [path.stem.split("-", 1)[1] for path in self.directory.glob("shard-*.sqlite")]

    def close(self):
        """Close this process's connections (they reopen on the next use)."""
        with self._lock:
            for connection in self._connections.values():
                connection.close()
            self._connections = {}

    def clear(self):
        self.close()
        self._legacy.forget()
        shutil.rmtree(self.directory, ignore_errors=True)
