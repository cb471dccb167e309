"""TorchMLPClassifier and TorchMLPRegressor: sklearn's estimator checks and the training features."""

from __future__ import annotations

import pickle
import subprocess
import sys

import numpy as np
import pytest
from sklearn.datasets import make_classification, make_multilabel_classification, make_regression
from sklearn.utils.estimator_checks import parametrize_with_checks

from skmm import TorchMLPClassifier, TorchMLPRegressor

from .conftest import DEVICE

# Small settings keep the feature tests short.
FAST = dict(hidden_layer_sizes=(32,), max_epochs=80, device=DEVICE, random_state=0)


# Every check of sklearn.utils.estimator_checks runs, on the estimators with their default parameters (only
# the device is pinned, to run the suite on one device); none is skipped.
@parametrize_with_checks([TorchMLPClassifier(device=DEVICE), TorchMLPRegressor(device=DEVICE)])
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


def _blobs(n=300, classes=3, seed=0):
    return make_classification(n_samples=n, n_features=10, n_informative=6, n_classes=classes,
                               n_clusters_per_class=1, random_state=seed)


def test_string_labels_and_predict_proba():
    X, y = _blobs()
    labels = np.array(["negative", "neutral", "positive"])[y]
    clf = TorchMLPClassifier(**FAST).fit(X, labels)
    assert clf.classes_.tolist() == ["negative", "neutral", "positive"]
    proba = clf.predict_proba(X)
    assert proba.shape == (300, 3) and np.allclose(proba.sum(axis=1), 1, atol=1e-5)
    assert set(clf.predict(X)) <= set(labels)
    assert clf.score(X, labels) > 0.85


def test_binary_and_multilabel():
    X, y = _blobs(classes=2)
    assert TorchMLPClassifier(**FAST).fit(X, y).score(X, y) > 0.85
    X, Y = make_multilabel_classification(n_samples=300, n_features=10, n_classes=4, random_state=0)
    clf = TorchMLPClassifier(**{**FAST, "max_epochs": 150}).fit(X, Y)
    assert clf.predict(X).shape == Y.shape and clf.predict_proba(X).shape == Y.shape
    assert (clf.predict(X) == Y).mean() > 0.8


def test_optimizers_and_activations():
    X, y = _blobs()
    for optimizer in ("adam", "adamw", "sgd"):
        for activation in ("relu", "gelu", "tanh"):
            clf = TorchMLPClassifier(**FAST, optimizer=optimizer, activation=activation,
                                     learning_rate=0.05 if optimizer == "sgd" else 1e-3)
            assert clf.fit(X, y).score(X, y) > 0.8, (optimizer, activation)


def test_early_stopping_restores_the_best_weights():
    X, y = _blobs(n=400)
    clf = TorchMLPClassifier(hidden_layer_sizes=(256, 256), dropout=0.0, learning_rate=3e-3, max_epochs=300,
                             early_stopping=True, n_iter_no_change=5, device=DEVICE, random_state=0).fit(X, y)
    assert clf.n_iter_ < 300
    assert clf.best_epoch_ == int(np.argmin(clf.validation_loss_curve_)) + 1
    assert clf.n_iter_ == clf.best_epoch_ + 5  # stopped n_iter_no_change epochs after the best


def test_inputs_of_any_scale_train_alike_with_the_default_standardisation():
    X, y = _blobs()
    reference = TorchMLPClassifier(**FAST).fit(X, y).predict_proba(X)
    for scaled in (X * 1e-3, X * 1e3 + 50):  # centred and scaled inside: the same model
        np.testing.assert_allclose(TorchMLPClassifier(**FAST).fit(scaled, y).predict_proba(scaled), reference,
                                   atol=2e-3)
    clf = TorchMLPClassifier(**FAST, standardize="features").fit(X * np.arange(1, 11), y)
    np.testing.assert_allclose(clf.input_scale_, X.std(axis=0) * np.arange(1, 11), rtol=1e-4)
    raw = TorchMLPClassifier(**FAST, standardize=False).fit(X, y)
    assert raw.input_mean_ is None and raw.input_scale_ is None


def test_early_stopping_does_not_stop_a_model_still_near_chance():
    # Unscaled tiny inputs learn slowly: the validation loss creeps down by less than tol per epoch. The old
    # rule stopped such a model after n_iter_no_change epochs at chance; it must train on until it is better.
    X, y = _blobs(n=600)
    slow = dict(FAST, standardize=False, early_stopping=True, n_iter_no_change=3, max_epochs=300)
    clf = TorchMLPClassifier(**slow).fit(X * 1e-3, y)
    majority = np.bincount(y).max() / len(y)
    assert max(clf.validation_score_curve_) > majority + 0.2, clf.validation_score_curve_[-5:]
    assert clf.score(X * 1e-3, y) > 0.7


def test_a_model_no_better_than_the_majority_class_warns():
    from sklearn.exceptions import ConvergenceWarning

    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(300, 5)), (rng.random(300) < 0.8).astype(int)  # labels unrelated to X
    with pytest.warns(ConvergenceWarning, match="no better than always predicting the most frequent class"):
        TorchMLPClassifier(**{**FAST, "max_epochs": 20}, early_stopping=True).fit(X, y)
    with pytest.warns(ConvergenceWarning, match="no better"):
        TorchMLPRegressor(**{**FAST, "max_epochs": 20}, early_stopping=True).fit(X, rng.normal(size=300))
    import warnings

    X, y = _blobs()
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        TorchMLPClassifier(**FAST, early_stopping=True).fit(X, y)  # a model that learned: no warning


def test_early_stopping_auto_turns_on_with_a_large_enough_validation_split():
    X, y = _blobs(n=1000)
    assert TorchMLPClassifier(**FAST).fit(X, y).best_epoch_ is not None  # 100 held-out rows: on
    assert TorchMLPClassifier(**FAST).fit(X[:500], y[:500]).best_epoch_ is None  # 50: off
    assert TorchMLPClassifier(**FAST, validation_fraction=0.2).fit(X[:500], y[:500]).best_epoch_ is not None


def test_class_weight_balanced_raises_minority_recall():
    X, y = make_classification(n_samples=600, n_features=10, weights=[0.9, 0.1], class_sep=0.5,
                               flip_y=0.05, random_state=1)
    plain = TorchMLPClassifier(**FAST).fit(X, y)
    balanced = TorchMLPClassifier(**FAST, class_weight="balanced").fit(X, y)
    recall = lambda model: (model.predict(X)[y == 1] == 1).mean()  # noqa: E731
    assert recall(balanced) > recall(plain) + 0.05
    dict_weighted = TorchMLPClassifier(**FAST, class_weight={0: 1.0, 1: 9.0}).fit(X, y)
    assert recall(dict_weighted) > recall(plain) + 0.05


def test_partial_fit_streams_and_rejects_unseen_classes():
    X, y = _blobs()
    clf = TorchMLPClassifier(**FAST)
    with pytest.raises(ValueError, match="classes must be passed"):
        clf.partial_fit(X[:50], y[:50])
    clf.partial_fit(X[:100], y[:100], classes=[0, 1, 2])
    after_one_chunk = clf.score(X, y)
    for epoch in range(30):
        for start in range(0, 300, 100):
            clf.partial_fit(X[start:start + 100], y[start:start + 100])
    assert clf.n_iter_ == 91
    assert clf.score(X, y) > max(0.8, after_one_chunk + 0.1)  # it kept learning, chunk after chunk
    with pytest.raises(ValueError, match=r"labels not seen.*\[7\]"):
        clf.partial_fit(X[:5], np.array([0, 1, 7, 2, 0]))


def test_regressor_fits_and_supports_huber_and_multioutput():
    X, y = make_regression(n_samples=300, n_features=8, noise=5.0, random_state=0)
    assert TorchMLPRegressor(**FAST).fit(X, y * 1000).score(X, y * 1000) > 0.9  # scale-free: y standardised
    assert TorchMLPRegressor(**FAST, loss="huber").fit(X, y).score(X, y) > 0.9
    Y = np.column_stack([y, -2 * y])
    reg = TorchMLPRegressor(**FAST).fit(X, Y)
    assert reg.predict(X).shape == (300, 2) and reg.score(X, Y) > 0.9
    reg.partial_fit(X, Y)


def test_same_random_state_same_model_bit_for_bit():
    X, y = _blobs()
    a = TorchMLPClassifier(**FAST).fit(X, y).predict_proba(X)
    b = TorchMLPClassifier(**FAST).fit(X, y).predict_proba(X)
    np.testing.assert_array_equal(a, b)
    c = TorchMLPClassifier(**{**FAST, "random_state": 1}).fit(X, y).predict_proba(X)
    assert not np.array_equal(a, c)


_SCRIPT = """
import numpy as np, sys
from sklearn.datasets import make_classification
from skmm import TorchMLPClassifier
X, y = make_classification(n_samples=200, n_features=8, random_state=0)
p = TorchMLPClassifier(hidden_layer_sizes=(16,), max_epochs=20, device="cpu", random_state=3).fit(X, y).predict_proba(X)
sys.stdout.write(p.tobytes().hex())
"""


def test_reproducible_across_processes():
    runs = [subprocess.run([sys.executable, "-c", _SCRIPT], capture_output=True, text=True, check=True).stdout
            for _ in range(2)]
    assert runs[0] == runs[1] and len(runs[0]) > 1000


def test_fitting_leaves_the_global_torch_rng_alone():
    import torch

    X, y = _blobs(n=100)
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    TorchMLPClassifier(**FAST).fit(X, y)
    np.testing.assert_array_equal(torch.rand(3).numpy(), expected.numpy())


def test_pickle_round_trip_keeps_predictions_and_can_keep_training():
    X, y = _blobs()
    clf = TorchMLPClassifier(**FAST).fit(X, y)
    restored = pickle.loads(pickle.dumps(clf))
    np.testing.assert_array_equal(restored.predict_proba(X), clf.predict_proba(X))
    restored.partial_fit(X, y)


def test_invalid_parameters_raise_in_fit():
    X, y = _blobs(n=50)
    for params in ({"hidden_layer_sizes": (0,)}, {"activation": "softsign"}, {"optimizer": "lbfgs"},
                   {"dropout": 1.0}, {"batch_size": 0}, {"validation_fraction": 1.5}, {"learning_rate": -1}):
        with pytest.raises(ValueError):
            TorchMLPClassifier(**{**FAST, **params}).fit(X, y)


def test_the_no_better_than_trivial_warning_names_the_users_line():
    """However deep in skmm (and scikit-learn's wrappers) it is raised, the warning points at the caller."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = np.zeros((30, 2)), np.array([0, 1, 2] * 10)  # nothing to learn: no better than the majority class
    for model in (TorchMLPClassifier(max_epochs=2, device=DEVICE, random_state=0),
                  make_pipeline(StandardScaler(), TorchMLPClassifier(max_epochs=2, device=DEVICE, random_state=0))):
        with pytest.warns(ConvergenceWarning, match="no better than") as record:
            model.fit(X, y)
        assert {warning.filename for warning in record if warning.category is ConvergenceWarning} == {__file__}
