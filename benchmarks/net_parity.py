"""MultimodalNetClassifier(train_blocks=0) against TorchMLPClassifier on ModalityFusion(method="concat").

Both train an MLP on the same frozen embeddings (default encoders, default parameters); they should score alike.
Tables: generated (400 rows, 5 folds), and the real ones of ``_real_tables.py`` when their packages are there
(emoji: a stratified 360-row sample and all 1,898 rows; pokemon: 640 rows; 3 folds each, repeated 3 times with
other splits on the two small tables, whose 3 folds alone move a comparison by 1-2 points). MVSA is in
``mvsa.py`` (TorchMLP rows) and ``mvsa_finetune.py`` (``blocks=0``).

    python benchmarks/net_parity.py

Appends a dated run to benchmarks/results/net_parity.json (earlier runs stay: the network's recipe changes).
"""

from __future__ import annotations

import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _real_tables  # noqa: E402
from _common import METRICS, RESULTS, append_to_history  # noqa: E402


def tables():
    from sklearn.model_selection import train_test_split

    from skmm.datasets import make_multimodal_classification

    yield "generated, 400 rows", *make_multimodal_classification(n_samples=400, random_state=0), 5, 1
    if _real_tables.available("emoji"):
        X, y = _real_tables.load("emoji")
        keep, _ = train_test_split(np.arange(len(X)), train_size=360, stratify=y, random_state=0)
        yield "emoji, 360 rows", X.iloc[keep].reset_index(drop=True), y[keep], 3, 3
        yield "emoji, 1,898 rows", X, y, 3, 1
    if _real_tables.available("pokemon"):
        yield "pokemon, 640 rows", *_real_tables.load("pokemon"), 3, 3


def main():
    from sklearn.model_selection import RepeatedStratifiedKFold, cross_validate
    from sklearn.pipeline import Pipeline

    from skmm import ImageEncoder, ModalityFusion, MultimodalNetClassifier, TextEncoder, TorchMLPClassifier
    from skmm.performance import tune_malloc

    tune_malloc()  # this script owns its process (see skmm.performance)

    def modalities():
        return [("image", ImageEncoder(cache="memory"), "image"), ("text", TextEncoder(cache="memory"), "text")]

    rows = []
    for name, X, y, n_folds, n_repeats in tables():
        # the first repeat's splits are StratifiedKFold(n_folds, shuffle=True, random_state=0)'s
        folds = RepeatedStratifiedKFold(n_splits=n_folds, n_repeats=n_repeats, random_state=0)
        models = {"TorchMLPClassifier() on concat": Pipeline([("fuse", ModalityFusion(modalities())),
                                                              ("clf", TorchMLPClassifier(random_state=0))]),
                  "MultimodalNetClassifier(train_blocks=0)": MultimodalNetClassifier(modalities(), train_blocks=0,
                                                                                     random_state=0)}
        for model_name, model in models.items():
            start = time.perf_counter()
            scores = cross_validate(model, X[["image", "text"]], y, cv=folds, scoring=METRICS)
            accuracy = scores["test_accuracy"]
            rows.append({"table": name, "model": model_name, "folds": f"{n_folds} x {n_repeats}",
                         "seconds": time.perf_counter() - start,
                         **{metric: float(scores[f"test_{metric}"].mean()) for metric in METRICS},
                         "accuracy_standard_error": float(accuracy.std() / np.sqrt(len(accuracy)))})
            print(f"{name:<20} {model_name:<40} acc {rows[-1]['accuracy']:.4f} "
                  f"(± {rows[-1]['accuracy_standard_error']:.4f}) weighted-F1 "
                  f"{rows[-1]['f1_weighted']:.4f} macro-F1 {rows[-1]['f1_macro']:.4f} "
                  f"({rows[-1]['seconds']:.0f} s)", flush=True)
    append_to_history(RESULTS / "net_parity.json", {"date": time.strftime("%Y-%m-%d %H:%M"), "rows": rows})
    print(f"appended to {RESULTS / 'net_parity.json'}")


if __name__ == "__main__":
    main()
