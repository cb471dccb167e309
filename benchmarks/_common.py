"""Helpers shared by the benchmarks: where the real data is, what MVSA results report, and a JPEG set to time on."""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MVSA_DIR = Path(os.environ.get("SKMM_MVSA_DIR", REPO.parent / "shared" / "datasets" / "mvsa"))
RESULTS = REPO / "benchmarks" / "results"
# What the MVSA benchmarks report: the papers report accuracy and weighted F1; macro-F1 shows the small class.
# The names are scikit-learn's scorers, so cross_validate takes them as they are.
METRICS = ("accuracy", "f1_weighted", "f1_macro")


def scores(y_true, y_pred):
    """The METRICS of one set of predictions, by name."""
    from sklearn.metrics import accuracy_score, f1_score

    return {"accuracy": accuracy_score(y_true, y_pred), "f1_weighted": f1_score(y_true, y_pred, average="weighted"),
            "f1_macro": f1_score(y_true, y_pred, average="macro")}


def append_to_history(path, record):
    """Append ``record`` to the JSON list of runs at ``path`` (created with its folder if missing); returns the list."""
    import json

    path = Path(path)
    history = json.loads(path.read_text()) if path.exists() else []
    history.append(record)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(history, indent=2))
    return history


def jpeg_files(n, workdir):
    """``n`` JPEG paths: MVSA's photos when present, else generated 256 px JPEGs (kept in ``workdir``)."""
    photos = sorted((MVSA_DIR / "data").glob("*.jpg"), key=lambda p: int(p.stem)) if MVSA_DIR.exists() else []
    if len(photos) >= n:
        return [str(p) for p in photos[:n]], "MVSA photos"
    folder = Path(workdir) / f"jpegs_{n}"
    done = folder / "complete"
    if not done.exists():  # generated once per folder, reused by later runs
        from skmm.datasets import make_multimodal_classification

        make_multimodal_classification(n_samples=n, image_size=256, image_format="path", image_dir=folder,
                                       random_state=0)
        done.touch()
    return [str(folder / f"{i:06d}.jpg") for i in range(n)], "generated 256 px JPEGs"


def add_mvsa_arguments(parser):
    """--data, --device and --cache, as every MVSA benchmark takes them."""
    parser.add_argument("--data", default=str(MVSA_DIR))
    parser.add_argument("--device", default="auto")
    parser.add_argument("--cache", default=str(REPO / "benchmarks" / ".cache"))


def encoder_modalities(column, encoder, models, device, cache):
    """A modality of ``column`` per model in ``models`` (None or empty: the encoder's default), named column,
    column2, column3..."""
    return [(column if k == 0 else f"{column}{k + 1}",
             encoder(device=device, cache=cache, **({"model": model} if model else {})), column)
            for k, model in enumerate(models or [None])]


def mvsa_present(args):
    """Whether the MVSA data is at ``args.data`` (saying so when it is not: the benchmark skips)."""
    if os.path.exists(os.path.join(args.data, "train.txt")):
        return True
    print(f"MVSA data not found at {args.data}: skipped.")
    return False
