"""Embedding a table on Dask (skmm.dask / `skmm embed -o FOLDER`) against one process, in one run.

Generated images (256 px JPEGs) and texts, embedded by the default encoders (cache off, so neither run
reads the other's results) into resumable Parquet parts, the same code path both ways:

- one process: the parts one at a time, the encoders on every core (2 threads here);
- Dask: a LocalCluster of 2 worker processes x 1 thread, a part per worker at a time.

Reports rows/s for each, the Dask/one-process ratio, and each worker's peak resident memory.

    python benchmarks/distributed_embed.py                   # 20,000 rows, 1 round
    python benchmarks/distributed_embed.py --rows 2000 --rounds 2

Writes benchmarks/results/distributed_embed.json.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import RESULTS  # noqa: E402


def make_table(n, workdir):
    import pandas as pd

    from skmm.datasets import make_multimodal_classification

    folder = Path(workdir) / f"table_{n}"
    if not (folder / "table.parquet").exists():  # generated once, reused by later runs
        X, _ = make_multimodal_classification(n_samples=n, image_size=256, image_format="path",
                                              image_dir=folder / "images", random_state=0)
        pd.DataFrame({"image": X["image"], "text": X["text"]}).to_parquet(folder / "table.parquet")
    return pd.read_parquet(folder / "table.parquet")


def peak_rss_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run(table, rows_per_part, out, client=None):
    import dask.dataframe as dd

    from skmm import ImageEncoder, TextEncoder
    from skmm.encoders import EmbedColumns
    from skmm.dask import write_parquet

    shutil.rmtree(out, ignore_errors=True)
    encoders = EmbedColumns([("image", ImageEncoder(cache=None, progress=False)),
                             ("text", TextEncoder(cache=None, progress=False))])
    data = dd.from_pandas(table, chunksize=rows_per_part, sort=False)
    if client is not None:
        client.run(_warm_up)  # model loading is start-up, as in one process below
    else:
        _warm_up()
    started = time.perf_counter()
    write_parquet(encoders, data, out)
    return len(table) / (time.perf_counter() - started)


def _warm_up():
    from skmm import ImageEncoder, TextEncoder
    from skmm.performance import tune_malloc

    tune_malloc()
    ImageEncoder(cache=None, progress=False).fit(["x"]).load_backbone()
    TextEncoder(cache=None, progress=False).fit(["x"]).load_backbone()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--rows-per-part", type=int, default=1_000)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--workdir", default=os.path.join(tempfile.gettempdir(), "skmm_distributed_embed"))
    args = parser.parse_args()
    from distributed import Client, LocalCluster

    table = make_table(args.rows, args.workdir)
    out = Path(args.workdir) / "out"
    results = {"one process": [], "dask": []}
    worker_peaks = []
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        for round_ in range(args.rounds):
            order = ["one process", "dask"] if round_ % 2 == 0 else ["dask", "one process"]
            for mode in order:
                if mode == "dask":
                    with Client(cluster) as client:
                        rate = run(table, args.rows_per_part, out, client)
                        worker_peaks = sorted(client.run(peak_rss_mib).values())
                else:
                    rate = run(table, args.rows_per_part, out)
                results[mode].append(rate)
                print(f"round {round_ + 1}, {mode}: {rate:.1f} rows/s", flush=True)
    best = {mode: max(rates) for mode, rates in results.items()}
    record = {"date": time.strftime("%Y-%m-%d %H:%M"), "rows": args.rows, "rows_per_part": args.rows_per_part,
              "cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
              "rows_per_s": results, "best": best, "dask_over_one_process": best["dask"] / best["one process"],
              "worker_peak_rss_mib": worker_peaks, "one_process_peak_rss_mib": peak_rss_mib()}
    print(json.dumps(record, indent=1))
    (RESULTS / "distributed_embed.json").write_text(json.dumps(record, indent=1) + "\n")


if __name__ == "__main__":
    main()
