"""
Stacking many members: one estimator, each input embedded once
==============================================================

:class:`~skmm.MultimodalStackingClassifier` cross-fits many diverse classifiers of the table (each modality
alone, every early-fusion method, an MLP, word and character n-grams of the text) and trains a final estimator
on their out-of-fold probabilities; each member then predicts new rows with the average of its fold models
(AutoGluon's bagging). The members share the embedding cache, so the images and texts are
embedded once, up front: stacking costs fits on embeddings, not embeddings. We compare each member with
the stack on held-out rows.
"""

import time

import matplotlib.pyplot as plt
from sklearn.model_selection import train_test_split

from skmm import ImageEncoder, MultimodalStackingClassifier, TextEncoder
from skmm.datasets import make_multimodal_classification

X, y = make_multimodal_classification(n_samples=300, image_size=64, random_state=0)
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=100, stratify=y, random_state=0)
modalities = [("image", ImageEncoder(), "image"), ("text", TextEncoder(), "text")]

# verbose=1: the embedding pass, then one line per member (its out-of-fold accuracy and seconds).
start = time.perf_counter()
stack = MultimodalStackingClassifier(modalities, random_state=0, verbose=1).fit(X_train, y_train)
print(f"fit: {time.perf_counter() - start:.1f} s for {len(stack.members_)} members x 5 folds")

# Every member (its 5 fold models averaged) and the stack, on the same 100 rows none of them saw.
scores = {name: member.score(X_test, y_test) for name, member in stack.members_}
scores["stack"] = stack.score(X_test, y_test)
for name, score in scores.items():
    print(f"{name:>16}: {score:.3f}")

plt.barh(list(scores), list(scores.values()), color=["C0"] * len(stack.members_) + ["C1"])
plt.xlabel("accuracy on 100 held-out rows (axis zoomed)")
plt.xlim(max(0.0, min(scores.values()) - 0.1), 1)
plt.tight_layout()
plt.show()
