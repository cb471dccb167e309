"""Which disk store for the embedding cache: the measurements behind skmm._store.SQLiteStore.

Writes N entries (384 float32 each, as MiniLM's embeddings) in batches of 64, as an encoder does, then looks
up 10,000 random keys from a fresh handle (a new process's view), in:

- the 0.1 layout: one checksummed .npy file per entry (reimplemented here; skmm now only reads it);
- skmm's SQLiteStore: 16 SQLite files in WAL mode, one transaction per batch;
- diskcache.Cache (SQLite index, values inline under 32 KB), if installed;
- LMDB (one memory-mapped file, one writer at a time), if installed.

    python benchmarks/store_choice.py --entries 200000

Writes benchmarks/results/store_choice.json. Install the optional stores to compare them
(pip install diskcache lmdb); they are not skmm dependencies.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import RESULTS  # noqa: E402

from skmm._cache import make_key  # noqa: E402
from skmm._store import SQLiteStore  # noqa: E402


class OneFilePerEntry:
    """skmm 0.1's disk cache: <key[:2]>/<key>.npy, a digest of the payload first, written by rename."""

    def __init__(self, folder):
        self.folder = Path(folder)

    def put_many(self, entries):
        for key, value in entries.items():
            buffer = io.BytesIO()
            np.save(buffer, value, allow_pickle=False)
            payload = buffer.getvalue()
            path = self.folder / key[:2] / f"{key}.npy"
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            tmp.write_bytes(hashlib.blake2b(payload, digest_size=16).digest() + payload)
            os.replace(tmp, path)

    def get_many(self, keys):
        found = {}
        for key in keys:
            try:
                blob = (self.folder / key[:2] / f"{key}.npy").read_bytes()
            except FileNotFoundError:
                continue
            if hashlib.blake2b(blob[16:], digest_size=16).digest() == blob[:16]:
                found[key] = np.load(io.BytesIO(blob[16:]))
        return found


class DiskcacheStore:
    def __init__(self, folder):
        import diskcache

        self.cache = diskcache.Cache(str(folder), size_limit=2**40)

    def put_many(self, entries):
        with self.cache.transact():
            for key, value in entries.items():
                self.cache.set(key, value.tobytes())

    def get_many(self, keys):
        found = {}
        for key in keys:
            blob = self.cache.get(key)
            if blob is not None:
                found[key] = np.frombuffer(blob, dtype=np.float32)
        return found


class LMDBStore:
    def __init__(self, folder):
        import lmdb

        Path(folder).mkdir(parents=True, exist_ok=True)
        self.env = lmdb.open(str(folder), map_size=2**36)

    def put_many(self, entries):
        with self.env.begin(write=True) as txn:
            for key, value in entries.items():
                txn.put(bytes.fromhex(key), value.tobytes())

    def get_many(self, keys):
        found = {}
        with self.env.begin() as txn:
            for key in keys:
                blob = txn.get(bytes.fromhex(key))
                if blob is not None:
                    found[key] = np.frombuffer(blob, dtype=np.float32)
        return found


def stores():
    yield "one file per entry (0.1)", OneFilePerEntry
    yield "SQLiteStore, 16 shards (skmm)", SQLiteStore
    for name, cls, module in (("diskcache.Cache", DiskcacheStore, "diskcache"), ("LMDB", LMDBStore, "lmdb")):
        try:
            __import__(module)
        except ImportError:
            print(f"{name}: not installed, skipped")
            continue
        yield name, cls


def measure(cls, folder, keys, vectors):
    store = cls(folder)
    started = time.perf_counter()
    for start in range(0, len(keys), 64):
        store.put_many({key: vectors[i % len(vectors)] for i, key in enumerate(keys[start:start + 64], start)})
    write = time.perf_counter() - started
    del store
    chosen = [keys[i] for i in np.random.default_rng(0).choice(len(keys), 10_000, replace=False)]
    fresh = cls(folder)
    started = time.perf_counter()
    found = fresh.get_many(chosen)
    lookup = time.perf_counter() - started
    assert len(found) == len(chosen)
    files = sum(len(names) for _, _, names in os.walk(folder))
    size = sum(os.path.getsize(os.path.join(d, n)) for d, _, names in os.walk(folder) for n in names)
    return {"writes_per_s": len(keys) / write, "lookup_10k_s": lookup, "files": files, "mib": size / 2**20}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--entries", type=int, default=200_000)
    parser.add_argument("--workdir", default=tempfile.gettempdir())
    args = parser.parse_args()
    keys = [make_key("bench", str(i)) for i in range(args.entries)]
    vectors = np.random.default_rng(0).standard_normal((1000, 384)).astype(np.float32)
    results = {}
    for name, cls in stores():
        folder = Path(tempfile.mkdtemp(dir=args.workdir, prefix="skmm_store_"))
        try:
            results[name] = measure(cls, folder, keys, vectors)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        print(f"{name}: {json.dumps({k: round(v, 3) for k, v in results[name].items()})}", flush=True)
    record = {"date": time.strftime("%Y-%m-%d %H:%M"), "entries": args.entries, "floats_per_entry": 384,
              "results": results}
    (RESULTS / "store_choice.json").write_text(json.dumps(record, indent=1) + "\n")


if __name__ == "__main__":
    main()
