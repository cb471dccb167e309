"""Grid search speed: how much the embedding cache saves when GridSearchCV clones the pipeline per fit.

The same rows (MVSA photos + tweets when present, else generated), default offline encoders:
  1. one plain embedding pass over every row (images and texts, cache off): the reference time;
  2. GridSearchCV over fusion method (average, weighted, concat) x 5 folds, LogisticRegression,
     default settings (in-memory cache);
  3. the same with n_jobs=2 and a disk cache shared by the two worker processes (fresh workers);
  4. the same with the cache off (cache=None): every fit re-embeds its rows.
With --repeat R, steps 1-3 run R times in alternation, each from an empty cache with fresh worker processes,
and the best time of each counts; each search is also reported against its own round's pass. This machine's
speed drifts by up to 30 % within minutes: alternating rounds expose the reference and the searches to it alike.
Ratios are what count (this CPU is slow). Each run is appended to benchmarks/results/search_speed_<n>rows.json.

    python benchmarks/search_speed.py --n-rows 1000 --repeat 3 --skip-uncached
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import MVSA_DIR, RESULTS  # noqa: E402


def rows(n):
    if (MVSA_DIR / "train.txt").exists():
        from skmm.datasets import load_mvsa

        X, y = load_mvsa(MVSA_DIR)
        return X.iloc[:n], y[:n], "MVSA"
    from skmm.datasets import make_multimodal_classification

    X, y = make_multimodal_classification(n_samples=n, image_size=128, random_state=0)
    return X, y, "generated"


def search(cache, n_jobs, device):
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV, StratifiedKFold
    from sklearn.pipeline import Pipeline

    from skmm import ImageEncoder, ModalityFusion, TextEncoder

    fusion = ModalityFusion([("image", ImageEncoder(device=device, cache=cache), "image"),
                             ("text", TextEncoder(device=device, cache=cache), "text")])
    pipe = Pipeline([("fuse", fusion), ("clf", LogisticRegression(max_iter=2000))])
    return GridSearchCV(pipe, {"fuse__method": ["average", "weighted", "concat"]},
                        cv=StratifiedKFold(5, shuffle=True, random_state=0), n_jobs=n_jobs)


# Result labels (the keys of the results file).
PLAIN = "plain embedding pass (cache off)"
SEARCHES = {1: "grid search, n_jobs=1, memory cache", 2: "grid search, n_jobs=2, shared disk cache"}
UNCACHED = "grid search, n_jobs=1, cache off"
EVERY_ROUND = " (every round)"


def timed(label, function, results):
    start = time.perf_counter()
    value = function()
    results.setdefault(label + EVERY_ROUND, []).append(time.perf_counter() - start)
    # The best round counts, for the reference and the searches alike.
    results[label] = min(results[label + EVERY_ROUND])
    print(f"{label:<42} {results[label + EVERY_ROUND][-1]:8.1f} s", flush=True)
    return value


def fresh_start():
    """Forget what an earlier round left in this process and in joblib's worker pool."""
    from joblib.externals.loky import get_reusable_executor

    from skmm import _cache, clear_cache

    clear_cache("memory")  # embeddings and fitted projections
    _cache._file_digests.clear()
    get_reusable_executor().shutdown(wait=True)  # n_jobs=2 starts fresh workers, as a first search does


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n-rows", type=int, default=1000)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--repeat", type=int, default=1,
                        help="rounds of (plain pass, n_jobs=1 search, n_jobs=2 search); the best of each counts")
    parser.add_argument("--skip-uncached", action="store_true", help="skip the slow cache-off search")
    args = parser.parse_args()
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")

    from skmm import ImageEncoder, TextEncoder
    from skmm.performance import tune_malloc

    tune_malloc()  # this script owns its process; the loky workers inherit SKMM_TUNE_MALLOC
    os.environ["SKMM_TUNE_MALLOC"] = "1"
    X, y, source = rows(args.n_rows)
    print(f"{len(X)} rows ({source}), 3 fusion methods x 5 folds = 15 fits + refit, {args.repeat} round(s)")
    results = {"n_rows": len(X), "source": source, "rounds": args.repeat}

    def plain_pass():
        ImageEncoder(device=args.device, cache=None).fit(X["image"]).transform(X["image"])
        TextEncoder(device=args.device, cache=None).fit(X["text"]).transform(X["text"])

    # The first pass also loads the two models (kept for the later passes and the searches): an extra pass
    # first, so that every timed pass runs with the models loaded, as the searches do.
    timed("plain embedding pass, loading the models", plain_pass, results)
    for _ in range(args.repeat):
        fresh_start()
        timed(PLAIN, plain_pass, results)
        found = timed(SEARCHES[1], lambda: search("auto", 1, args.device).fit(X, y), results)
        fresh_start()
        with tempfile.TemporaryDirectory() as directory:
            timed(SEARCHES[2], lambda: search(directory, 2, args.device).fit(X, y), results)
    results["best_params"] = found.best_params_
    results["cv_scores"] = dict(zip(map(str, found.cv_results_["params"]), found.cv_results_["mean_test_score"]))
    fresh_start()
    if not args.skip_uncached:
        timed(UNCACHED, lambda: search(None, 1, args.device).fit(X, y), results)
    for n_jobs, label in SEARCHES.items():
        # The best search against the best pass; also each search against its own round's pass (run just
        # before it), and the median of those.
        results[f"ratio n_jobs={n_jobs}"] = results[label] / results[PLAIN]
        ratios = [searched / plain for searched, plain in zip(results[label + EVERY_ROUND],
                                                              results[PLAIN + EVERY_ROUND])]
        results[f"ratio n_jobs={n_jobs} (every round)"] = ratios
        results[f"ratio n_jobs={n_jobs} (median of rounds)"] = float(np.median(ratios))
        print(f"search / plain pass, n_jobs={n_jobs}: best times {results[f'ratio n_jobs={n_jobs}']:.2f}; per round "
              f"{', '.join(f'{r:.2f}' for r in ratios)}, median {np.median(ratios):.2f} (target <= 1.3)")
    if not args.skip_uncached:
        results["cache off / cache on"] = results[UNCACHED] / results[SEARCHES[1]]
        print(f"cache off / cache on: {results['cache off / cache on']:.1f}x (target >= 10)")
    append_run(RESULTS / f"search_speed_{len(X)}rows.json", results)


def append_run(path, run):
    """Add ``run`` to the runs recorded in ``path`` (a JSON object with a list of runs)."""
    run = dict(run, date=datetime.datetime.now().isoformat(timespec="seconds"))
    recorded = {"runs": []}
    if path.exists():
        with open(path) as handle:
            recorded = json.load(handle)
    recorded["runs"].append(run)
    os.makedirs(path.parent, exist_ok=True)
    with open(path, "w") as handle:
        json.dump(recorded, handle, indent=2, default=str)


if __name__ == "__main__":
    main()
