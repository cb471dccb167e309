"""
Numbers and categories beside images and texts
==============================================

A product table has a photo and a description, and also a price and a brand. ``TabularEncoder`` turns
those other columns into one more modality: numbers imputed and standardised (with a flag where a value
was missing), categories one-hot encoded (with their own "missing" category). Here the generated table gets
a price that shifts with the class and a brand that leans towards it, with a few values missing; we compare,
by cross-validation, the table alone, image + text, and all three.
"""

import matplotlib.pyplot as plt
import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_score
from sklearn.pipeline import make_pipeline

from skmm import ImageEncoder, ModalityFusion, TabularEncoder, TextEncoder
from skmm.datasets import make_multimodal_classification

X, y = make_multimodal_classification(n_samples=150, image_size=64, random_state=0)
rng = np.random.default_rng(0)
codes = np.unique(y, return_inverse=True)[1]
X["price"] = rng.normal(20 + 3 * codes, 6)  # weak: the classes' prices overlap
X["brand"] = np.where(rng.random(len(X)) < 0.5, np.array(["acme", "globex", "initech"])[codes % 3],
                      rng.choice(["acme", "globex", "initech"], len(X)))
X.loc[rng.choice(len(X), 10, replace=False), "price"] = np.nan
X.loc[rng.choice(len(X), 10, replace=False), "brand"] = None

image_text = [("image", ImageEncoder(), "image"), ("text", TextEncoder(), "text")]
table = [("table", TabularEncoder(), ["price", "brand"])]
pipelines = {
    "table alone": make_pipeline(TabularEncoder(), LogisticRegression(max_iter=2000)),
    "image + text": make_pipeline(ModalityFusion(image_text), LogisticRegression(max_iter=2000)),
    "all three (concat)": make_pipeline(ModalityFusion(image_text + table), LogisticRegression(max_iter=2000)),
    "all three (weighted)": make_pipeline(ModalityFusion(image_text + table, method="weighted"),
                                          LogisticRegression(max_iter=2000)),
}
data = {"table alone": X[["price", "brand"]]}
scores = {name: cross_val_score(pipe, data.get(name, X), y, cv=3).mean() for name, pipe in pipelines.items()}
for name, score in scores.items():
    print(f"{name:>22}: {score:.3f}")

# Concatenation gives the small table block the weight of a whole embedding (every block is scaled to the
# same total spread), so a linear model can lean on its noise too; weighted fusion learns from y how much
# each modality is worth. Its weights, by modality:
weighted = pipelines["all three (weighted)"].fit(X, y)[0]
print({name: round(weight, 2) for name, weight in weighted.modality_weights_.items()})

plt.barh(list(scores), list(scores.values()))
plt.xlabel("3-fold CV accuracy")
plt.xlim(0, 1)
plt.tight_layout()
plt.show()
