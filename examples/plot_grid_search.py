"""
Grid search over fusion method and final estimator
==================================================

``GridSearchCV`` clones the pipeline for every fit; the encoders share one loaded backbone
and the embedding cache serves every image and text after its first pass.
"""

import time

import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline

from skmm import ImageEncoder, ModalityFusion, TextEncoder, TorchMLPClassifier
from skmm.datasets import make_multimodal_classification

X, y = make_multimodal_classification(n_samples=120, image_size=64, random_state=1)
pipe = Pipeline([
    ("fuse", ModalityFusion([("image", ImageEncoder(), "image"), ("text", TextEncoder(), "text")])),
    ("clf", LogisticRegression(max_iter=2000)),
])
grid = {
    "fuse__method": ["concat", "average", "weighted", "gated"],  # weighted learns its weights from y
    "clf": [LogisticRegression(max_iter=2000), TorchMLPClassifier(random_state=0)],  # at their defaults
}
start = time.perf_counter()
search = GridSearchCV(pipe, grid, cv=3).fit(X, y)
print(f"{len(search.cv_results_['params'])} candidates x 3 folds in {time.perf_counter() - start:.1f} s")
print("best:", search.best_params_, round(search.best_score_, 3))
pd.DataFrame(search.cv_results_)[["param_fuse__method", "param_clf", "mean_test_score"]]
