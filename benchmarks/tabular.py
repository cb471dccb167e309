"""Numbers and categories beside images and texts: TabularEncoder as a third modality, on real tables.

The tables of ``_real_tables.py`` (see there how to set them up; skipped when absent): emoji (1,898 rows and a
stratified 600-row sample; 9 Unicode categories; numeric ``added_in``, ``n_codepoints``; 0/1
``is_zwj_sequence``, ``has_skin_tones``) and pokemon (640 rows, 16 primary types; every other column of the
table: nine numbers and the secondary type). Each fusion method with ``LogisticRegression(max_iter=3000)``,
default encoders and default parameters, 3-fold stratified CV: image + text, then + ``TabularEncoder()`` over
the other columns, then the table alone.

    python benchmarks/tabular.py

Writes benchmarks/results/tabular.md and tabular.json.
"""

from __future__ import annotations

import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _real_tables  # noqa: E402
from _common import RESULTS, REPO  # noqa: E402

TABLE_COLUMNS = {"emoji": ["added_in", "n_codepoints", "is_zwj_sequence", "has_skin_tones"],
                 "pokemon": ["hp", "attack", "defense", "special_attack", "special_defense", "speed", "height_m",
                             "weight_kg", "generation", "secondary_type"]}
METHODS = ("concat", "average", "weighted", "gated")


def tables():
    from sklearn.model_selection import train_test_split

    for kind in ("emoji", "pokemon"):
        if not _real_tables.available(kind):
            print(f"table {kind!r} is not set up: skipped (see benchmarks/_real_tables.py)")
            continue
        X, y = _real_tables.load(kind)
        if kind == "emoji":
            keep, _ = train_test_split(np.arange(len(X)), train_size=600, stratify=y, random_state=0)
            yield "emoji, 600 rows", kind, X.iloc[np.sort(keep)].reset_index(drop=True), y[np.sort(keep)]
        yield f"{kind}, {len(X):,} rows", kind, X, y


def main():
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.pipeline import make_pipeline

    from skmm import ImageEncoder, ModalityFusion, TabularEncoder, TextEncoder

    cache = str(REPO / "benchmarks" / ".cache")
    folds = StratifiedKFold(3, shuffle=True, random_state=0)
    rows = []
    for name, kind, X, y in tables():
        def accuracy(branches, method):
            model = make_pipeline(ModalityFusion(branches, method=method), LogisticRegression(max_iter=3000))
            return float(cross_val_score(model, X, y, cv=folds).mean())

        embeddings = [("image", ImageEncoder(cache=cache), "image"), ("text", TextEncoder(cache=cache), "text")]
        table = [("table", TabularEncoder(), TABLE_COLUMNS[kind])]
        start = time.perf_counter()
        row = {"table": name, "table alone": accuracy(table, "concat")}
        for method in METHODS:
            row[method] = {"image + text": accuracy(embeddings, method),
                           "+ table": accuracy(embeddings + table, method)}
        row["seconds"] = time.perf_counter() - start
        rows.append(row)
        print(json.dumps(row), flush=True)
    if not rows:
        return
    lines = ["| table | " + " | ".join(METHODS) + " | table alone |", "|---|" + "---|" * (len(METHODS) + 1)]
    for row in rows:
        cells = [f"{100 * row[m]['image + text']:.1f} → {100 * row[m]['+ table']:.1f} "
                 f"({100 * (row[m]['+ table'] - row[m]['image + text']):+.1f})" for m in METHODS]
        lines.append(f"| {row['table']} | " + " | ".join(cells) + f" | {100 * row['table alone']:.1f} |")
    with open(RESULTS / "tabular.json", "w") as handle:
        json.dump(rows, handle, indent=2)
    with open(RESULTS / "tabular.md", "w") as handle:
        handle.write("# Image + text, then + TabularEncoder() (accuracy, 3-fold; LogisticRegression after each "
                     "fusion)\n\n" + "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
