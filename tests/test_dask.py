"""Distributed search: scikit-learn's own route, joblib's dask backend on a dask.distributed cluster."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.pipeline import Pipeline

from skmm import ImageEncoder, TextEncoder, TorchMLPClassifier, make_fusion
from skmm.datasets import make_multimodal_classification

distributed = pytest.importorskip("distributed")


def _search(tiny_image_params, tiny_text_params, cache):
    fusion = make_fusion((ImageEncoder(**tiny_image_params, cache=cache), "image"),
                         (TextEncoder(**tiny_text_params, cache=cache), "text"))
    pipe = Pipeline([("fuse", fusion), ("clf", LogisticRegression(C=10, max_iter=2000))])
    return GridSearchCV(pipe, {"fuse__method": ["average", "concat"],
                               "clf": [LogisticRegression(C=10, max_iter=2000),
                                       TorchMLPClassifier(hidden_layer_sizes=(16,), max_epochs=20, device="cpu",
                                                          random_state=0)]},
                        cv=StratifiedKFold(3, shuffle=True, random_state=0))


def test_tasks_ship_without_backbone_weights(tiny_text_params):
    """What dask sends to a worker per task: a fitted encoder with named weights pickles small."""
    encoder = ImageEncoder(device="cpu").fit([np.zeros((32, 32, 3), dtype=np.uint8)])
    assert len(pickle.dumps(encoder)) < 50_000  # EfficientNet-Lite0 alone is 13 MB


def test_local_cluster_search_matches_the_serial_search(tiny_image_params, tiny_text_params, tmp_path):
    import joblib

    X, y = make_multimodal_classification(n_samples=90, image_size=32, random_state=4)
    serial = _search(tiny_image_params, tiny_text_params, cache="memory").fit(X, y)
    cache = str(tmp_path / "shared_cache")  # one disk cache for every worker process
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, distributed.Client(cluster):
        with joblib.parallel_backend("dask"):
            parallel = _search(tiny_image_params, tiny_text_params, cache=cache).fit(X, y)
    np.testing.assert_allclose(parallel.cv_results_["mean_test_score"], serial.cv_results_["mean_test_score"],
                               atol=1e-12)
    assert parallel.best_params_["fuse__method"] == serial.best_params_["fuse__method"]
    assert any(tmp_path.joinpath("shared_cache").rglob("*.npy"))  # the workers filled the shared cache
