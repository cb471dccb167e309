"""
Single modalities vs early and late fusion
==========================================

Each row of the generated table carries its class in the image, in the text, or in both, so
fusing the modalities beats either alone. We compare, by cross-validation, text-only and
image-only pipelines, the four early-fusion methods and late fusion, every estimator at its defaults.
"""

import matplotlib.pyplot as plt
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_score
from sklearn.pipeline import Pipeline

from skmm import ImageEncoder, TextEncoder, make_fusion, make_late_fusion
from skmm.datasets import make_multimodal_classification

X, y = make_multimodal_classification(n_samples=120, image_size=64, random_state=0)


def logreg():
    return LogisticRegression(max_iter=2000)


pipelines = {
    "text": Pipeline([("fuse", make_fusion((TextEncoder(), "text"))), ("clf", logreg())]),
    "image": Pipeline([("fuse", make_fusion((ImageEncoder(), "image"))), ("clf", logreg())]),
}
for method in ("concat", "average", "weighted", "gated"):  # weighted learns its weights from y
    fusion = make_fusion((ImageEncoder(), "image"), (TextEncoder(), "text"), method=method)
    pipelines[method] = Pipeline([("fuse", fusion), ("clf", logreg())])
pipelines["late"] = make_late_fusion(("image", ImageEncoder(), "image", logreg()),
                                     ("text", TextEncoder(), "text", logreg()))

scores = {name: cross_val_score(pipe, X, y, cv=3).mean() for name, pipe in pipelines.items()}
for name, score in scores.items():
    print(f"{name:>8}: {score:.3f}")

plt.bar(list(scores), list(scores.values()))
plt.ylabel("3-fold CV accuracy (axis zoomed)")
plt.ylim(max(0.0, min(scores.values()) - 0.1), 1)
plt.show()
