"""``skmm fit``'s report: cross-validation of the fused model beside text-only and image-only baselines."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field

import numpy as np

from .._files import atomic_write, atomic_write_bytes

METRICS = {"accuracy": "accuracy", "f1_macro": "macro-F1", "f1_weighted": "weighted F1"}


@dataclass
class CVResult:
    """One pipeline's cross-validation: per-fold scores and seconds, and its out-of-fold predictions."""

    name: str
    rows: int
    scores: dict = field(default_factory=lambda: {metric: [] for metric in METRICS})
    seconds: list = field(default_factory=list)
    predictions: object = None
    probabilities: object = None
    classes: object = None

    def summary(self, metric):
        values = self.scores[metric]
        return f"{np.mean(values):.3f} ± {np.std(values):.3f}"


def _score(metric, y_true, y_pred):
    from sklearn.metrics import accuracy_score, f1_score

    if metric == "accuracy":
        return accuracy_score(y_true, y_pred)
    return f1_score(y_true, y_pred, average=metric.split("_")[1], zero_division=0)


def cross_validate(name, pipeline, X, y, folds, log):
    """Fit a clone of ``pipeline`` per fold (``folds``: index pairs into X), score it, keep its predictions."""
    from sklearn.base import clone

    result = CVResult(name, rows=len(X), classes=np.unique(y))
    predictions, probabilities = np.empty_like(y), np.full((len(X), len(result.classes)), np.nan)
    for i, (train, test) in enumerate(folds, start=1):
        start = time.perf_counter()
        model = clone(pipeline).fit(X.iloc[train], y[train])
        proba = model.predict_proba(X.iloc[test])
        # A fold may train without a rare class (a baseline's rows are a subset): that class gets probability 0.
        probabilities[test] = 0.0
        probabilities[np.ix_(test, np.searchsorted(result.classes, model.classes_))] = proba
        predictions[test] = model.classes_[proba.argmax(axis=1)]
        result.seconds.append(time.perf_counter() - start)
        for metric in METRICS:
            result.scores[metric].append(float(_score(metric, y[test], predictions[test])))
        log(f"  {name}: fold {i}/{len(folds)} accuracy {result.scores['accuracy'][-1]:.3f} "
            f"({result.seconds[-1]:.1f} s)")
    result.predictions, result.probabilities = predictions, probabilities
    return result


_FILES = ("report.md", "metrics.json", "per_class.csv", "confusion_matrix.csv", "confusion_matrix.png",
          "out_of_fold_predictions.csv")


def write_report(folder, *, fused, baselines, X, y, classes, settings, timings, notes, skipped_because="--cv 0"):
    """Write ``report.md``, ``metrics.json`` and, with cross-validation, ``per_class.csv``,
    ``confusion_matrix.csv`` / ``.png`` and ``out_of_fold_predictions.csv`` to ``folder`` (replacing what an
    earlier run wrote there); return the paths written. ``skipped_because``: why there is no
    cross-validation, when ``fused`` is None."""
    import pandas as pd
    from sklearn.metrics import classification_report, confusion_matrix

    folder.mkdir(parents=True, exist_ok=True)
    for name in _FILES:  # a file this run does not write must not be left from an earlier one
        (folder / name).unlink(missing_ok=True)
    written = []
    majority = max(np.mean(y == c) for c in classes)
    metrics = {"settings": settings, "rows": int(len(y)), "classes": [str(c) for c in classes],
               "majority_class_accuracy": float(majority), "timings_seconds": timings, "notes": notes}
    lines = [f"# skmm fit report: {settings['table']}", "",
             f"{len(y)} labelled rows, {len(classes)} classes: "
             + ", ".join(f"{c} ({int(np.sum(y == c))})" for c in classes)
             + f". Always predicting the most frequent class would score {majority:.3f} accuracy.", "",
             "| setting | value |", "|---|---|"] + [f"| {k} | {v} |" for k, v in settings.items()] + [""]
    lines += [f"- {note}" for note in notes] + ([""] if notes else [])
    if fused is None:
        lines += [f"Cross-validation skipped ({skipped_because}): no scores, per-class report or confusion matrix.",
                  ""]
    else:
        results = [fused, *baselines]
        metrics["cross_validation"] = {r.name: {"rows": r.rows, "scores": r.scores, "seconds": r.seconds}
                                       for r in results}
        lines += [f"## Cross-validation ({len(fused.seconds)} folds, the same for every row below)", "",
                  "| model | rows | " + " | ".join(METRICS.values()) + " |",
                  "|---|---|" + "---|" * len(METRICS)]
        lines += [f"| {r.name} | {r.rows} | " + " | ".join(r.summary(m) for m in METRICS) + " |" for r in results]
        lines += [f"| always the most frequent class | {len(y)} | {majority:.3f} | | |"]
        report = classification_report(y, fused.predictions, labels=classes, output_dict=True, zero_division=0)
        per_class = pd.DataFrame({str(c): report[str(c)] for c in classes}).T
        per_class.index.name = "class"
        atomic_write(folder / "per_class.csv", per_class.to_csv)
        metrics["per_class"] = per_class.to_dict(orient="index")
        lines += ["", f"## Per class (out-of-fold predictions of the model: {fused.name})", "",
                  "| class | precision | recall | F1 | support |", "|---|---|---|---|---|"]
        lines += [f"| {c} | {row['precision']:.3f} | {row['recall']:.3f} | {row['f1-score']:.3f} | "
                  f"{int(row['support'])} |" for c, row in per_class.iterrows()]
        matrix = confusion_matrix(y, fused.predictions, labels=classes, normalize="true")
        frame = pd.DataFrame(matrix, index=[f"true {c}" for c in classes], columns=[f"predicted {c}" for c in classes])
        atomic_write(folder / "confusion_matrix.csv", frame.to_csv)
        lines += ["", "## Confusion matrix (each row: where that class's rows went; rows sum to 1)", "",
                  "| | " + " | ".join(frame.columns) + " |", "|---|" + "---|" * len(classes)]
        lines += [f"| {name} | " + " | ".join(f"{v:.2f}" for v in row) + " |" for name, row in frame.iterrows()]
        out_of_fold = pd.DataFrame({X.index.name or "row": X.index, "label": y, "prediction": fused.predictions})
        for j, label in enumerate(fused.classes):
            out_of_fold[f"proba_{label}"] = fused.probabilities[:, j]
        atomic_write(folder / "out_of_fold_predictions.csv", lambda tmp: out_of_fold.to_csv(tmp, index=False))
        title = f"{settings['fusion']} fusion + {settings['estimator'].split('(')[0]}"
        written += [folder / "per_class.csv", folder / "confusion_matrix.csv", folder / "out_of_fold_predictions.csv",
                    _plot_confusion_matrix(matrix, classes, folder / "confusion_matrix.png", title)]
    lines += ["", "## Timings", ""] + [f"- {stage}: {seconds:.1f} s" for stage, seconds in timings.items()]
    atomic_write_bytes(folder / "report.md", ("\n".join(lines) + "\n").encode())
    atomic_write_bytes(folder / "metrics.json", (json.dumps(metrics, indent=2, default=str) + "\n").encode())
    return [folder / "report.md", folder / "metrics.json", *written]


def _plot_confusion_matrix(matrix, classes, path, title):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import ConfusionMatrixDisplay

    size = 2.5 + 0.6 * len(classes)
    figure, axes = plt.subplots(figsize=(size, size))
    ConfusionMatrixDisplay(matrix, display_labels=[str(c) for c in classes]).plot(
        ax=axes, colorbar=False, values_format=".2f", xticks_rotation=45 if len(classes) > 4 else "horizontal")
    axes.set_title(f"{title}: out-of-fold confusion matrix\n(each true class's rows sum to 1)")
    figure.tight_layout()
    atomic_write(path, lambda tmp: figure.savefig(tmp, dpi=120, format="png"))
    plt.close(figure)
    return path
