"""
Training the encoders' top blocks with the fusion
=================================================

:class:`~skmm.MultimodalNetClassifier` trains one network on the table: the top ``train_blocks`` blocks of
each backbone, the fusion and the head, together. The frozen part of each backbone runs once per image and
text (the embedding cache keeps it), so trying several settings costs little more than one. Here the same
table is fitted with the backbones frozen (``train_blocks=0``: only fusion and head learn) and with their
last block trained, by cross-validation.
"""

import time

import matplotlib.pyplot as plt
from sklearn.model_selection import cross_val_score

from skmm import ImageEncoder, MultimodalNetClassifier, TextEncoder
from skmm.datasets import make_multimodal_classification

X, y = make_multimodal_classification(n_samples=150, image_size=64, random_state=0)
modalities = [("image", ImageEncoder(), "image"), ("text", TextEncoder(), "text")]

scores = {}
for blocks in (0, 1):
    start = time.perf_counter()
    net = MultimodalNetClassifier(modalities, train_blocks=blocks, max_epochs=15, random_state=0)
    scores[f"train_blocks={blocks}"] = cross_val_score(net, X, y, cv=3).mean()
    print(f"train_blocks={blocks}: accuracy {scores[f'train_blocks={blocks}']:.3f} "
          f"({time.perf_counter() - start:.0f} s for 3 folds)")

plt.bar(list(scores), list(scores.values()))
plt.ylabel("3-fold CV accuracy")
plt.ylim(max(0.0, min(scores.values()) - 0.1), 1)
plt.show()
