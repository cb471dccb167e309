"""Made the files in this folder with skmm 0.1.0 (commit 2b35967), before the fusion wing became a package.

tests/test_persistence_compat.py loads them with the current code and checks that they predict as they did.
Kept for the record; running it again with a newer skmm would make new-layout files, which is not the point.

    python tests/data/legacy_0.1.0/make_models.py
"""

from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline

from skmm import ImageEncoder, TextEncoder, TorchMLPClassifier, make_fusion, persistence
from skmm.datasets import make_multimodal_classification



def main():
    HERE = Path(__file__).parent

    X, y = make_multimodal_classification(n_samples=60, image_size=32, random_state=0)
    np.savez_compressed(HERE / "inputs.npz", images=np.stack(X["image"]), texts=X["text"].to_numpy(dtype=str), y=y)
    for method, clf in (("concat", TorchMLPClassifier(hidden_layer_sizes=(16,), max_epochs=20, device="cpu",
                                                      random_state=0)),
                        ("average", LogisticRegression(C=10, max_iter=2000)),
                        ("weighted", LogisticRegression(C=10, max_iter=2000)),
                        ("gated", LogisticRegression(C=10, max_iter=2000))):
        fusion = make_fusion((ImageEncoder(device="cpu"), "image"), (TextEncoder(device="cpu"), "text"), method=method,
                             weights={"image": 1.0, "text": 2.0} if method == "weighted" else None, n_components=8)
        model = Pipeline([("fuse", fusion), ("clf", clf)]).fit(X, y)
        persistence.dump(model, HERE / f"{method}.skops")
        np.save(HERE / f"{method}_proba.npy", model.predict_proba(X))
    print(sorted(p.name for p in HERE.iterdir()))


if __name__ == "__main__":  # not on import: pytest --doctest-modules imports every module
    main()
