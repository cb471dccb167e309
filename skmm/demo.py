"""The README's main job: single-modality vs fused pipelines on generated data, real offline models."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_validate
from sklearn.pipeline import Pipeline

from . import ImageEncoder, TextEncoder, TorchMLPClassifier, make_fusion, make_late_fusion
from .datasets import CLASS_NAMES, make_multimodal_classification


def demo_pipelines(device="auto", batch_size=64, cache="auto", random_state=0):
    """The pipelines the demo compares, by name."""

    def image():
        return ImageEncoder(device=device, batch_size=batch_size, cache=cache)

    def text():
        return TextEncoder(device=device, batch_size=batch_size, cache=cache)

    def logreg():
        return LogisticRegression(max_iter=2000)

    pipelines = {
        "text only": Pipeline([("fuse", make_fusion((text(), "text"))), ("clf", logreg())]),
        "image only": Pipeline([("fuse", make_fusion((image(), "image"))), ("clf", logreg())]),
    }
    for method in ("concat", "average", "weighted", "gated"):
        fusion = make_fusion((image(), "image"), (text(), "text"), method=method)
        pipelines[f"early {method}"] = Pipeline([("fuse", fusion), ("clf", logreg())])
    pipelines["early concat + MLP"] = Pipeline([
        ("fuse", make_fusion((image(), "image"), (text(), "text"))),
        ("clf", TorchMLPClassifier(device=device, random_state=random_state)),
    ])
    pipelines["late average"] = make_late_fusion(("image", image(), "image", logreg()),
                                                 ("text", text(), "text", logreg()))
    return pipelines


def run_demo(n_samples=300, cv=5, device="auto", batch_size=64, cache="auto", random_state=0, out=print,
             output_dir=None):
    """Generate a dataset, embed it with the offline default models, and cross-validate each pipeline.

    With ``output_dir``, also save ``scores.png`` (accuracy and macro-F1 per pipeline, with the standard
    deviation over folds as error bars) and ``confusion_matrix.png`` (the best pipeline, out-of-fold).

    Returns
    -------
    results : pandas.DataFrame
        Mean and standard deviation of accuracy and macro-F1 per pipeline.
    """
    X, y = make_multimodal_classification(n_samples=n_samples, n_classes=3, image_size=96,
                                          random_state=random_state)
    out(f"Generated {len(X)} image+text rows, 3 classes (each modality carries part of the label).")
    folds = StratifiedKFold(n_splits=cv, shuffle=True, random_state=random_state)
    rows = []
    pipelines = demo_pipelines(device, batch_size, cache, random_state)
    for name, pipeline in pipelines.items():
        start = time.perf_counter()
        scores = cross_validate(pipeline, X, y, cv=folds, scoring=("accuracy", "f1_macro"))
        rows.append({
            "pipeline": name,
            "accuracy": scores["test_accuracy"].mean(), "accuracy_std": scores["test_accuracy"].std(),
            "f1_macro": scores["test_f1_macro"].mean(), "f1_macro_std": scores["test_f1_macro"].std(),
            "seconds": time.perf_counter() - start,
        })
        out(f"  {name:<20} accuracy {rows[-1]['accuracy']:.3f} +- {rows[-1]['accuracy_std']:.3f}   "
            f"macro-F1 {rows[-1]['f1_macro']:.3f}   ({rows[-1]['seconds']:.1f} s)")
    results = pd.DataFrame(rows).set_index("pipeline")
    best = results["accuracy"].idxmax()
    out(f"Best: {best} ({results.loc[best, 'accuracy']:.3f}); "
        f"text only {results.loc['text only', 'accuracy']:.3f}, image only {results.loc['image only', 'accuracy']:.3f}.")
    out("The first pipelines embed every image and text once; the rest reuse the embedding cache.")
    if output_dir is not None:
        for path in save_plots(results, pipelines[best], X, y, folds, output_dir):
            out(f"wrote {path}")
    return results


def save_plots(results, best_pipeline, X, y, folds, output_dir):
    """Bar chart of the scores and confusion matrix of the best pipeline, as PNG files."""
    import os

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import ConfusionMatrixDisplay
    from sklearn.model_selection import cross_val_predict

    os.makedirs(output_dir, exist_ok=True)
    figure, axes = plt.subplots(figsize=(10, 4.5))
    positions = np.arange(len(results))
    for offset, metric, label in ((-0.2, "accuracy", "accuracy"), (0.2, "f1_macro", "macro-F1")):
        axes.bar(positions + offset, results[metric], width=0.4, yerr=results[f"{metric}_std"], capsize=3,
                 label=label)
    axes.set_xticks(positions, results.index, rotation=30, ha="right")
    # Zoomed on the scores (not from 0): the differences between pipelines are what the chart is for.
    low = float((results[["accuracy", "f1_macro"]].to_numpy() - results[["accuracy_std", "f1_macro_std"]].to_numpy())
                .min())
    axes.set_ylim(max(0.0, low - 0.05), 1.0)
    axes.set_ylabel("cross-validated score (axis zoomed)")
    axes.set_title("Single modalities vs early and late fusion")
    axes.grid(axis="y", alpha=0.3)
    axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)  # outside: never over a bar
    figure.tight_layout()
    scores_path = os.path.join(output_dir, "scores.png")
    figure.savefig(scores_path, dpi=120)
    plt.close(figure)

    predictions = cross_val_predict(best_pipeline, X, y, cv=folds)
    labels = np.unique(y)
    display = ConfusionMatrixDisplay.from_predictions(
        y, predictions, labels=labels, display_labels=[CLASS_NAMES[k] for k in labels], normalize="true",
        values_format=".2f", colorbar=False)
    display.ax_.set_title(f"{results['accuracy'].idxmax()}: out-of-fold confusion matrix\n"
                          "(each true class's rows sum to 1)")
    display.figure_.set_size_inches(6, 5.5)
    display.figure_.tight_layout()
    matrix_path = os.path.join(output_dir, "confusion_matrix.png")
    display.figure_.savefig(matrix_path, dpi=120)
    plt.close(display.figure_)
    return scores_path, matrix_path


if __name__ == "__main__":  # pragma: no cover
    np.set_printoptions(precision=3)
    run_demo()
