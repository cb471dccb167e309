"""A weak or a pure-noise branch beside two embeddings: how much each fusion method gives it, and what it costs.

The embeddings are generated as encoders' are shaped (the class signal in a dozen directions of a few hundred
columns, little variance elsewhere), so that the tests run in seconds; docs/user_guide.md has the measurements on
real tables.
"""

from __future__ import annotations

import functools

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

from skmm import ModalityFusion


def _embedding_like_table(n_rows=300, n_classes=4, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, n_classes, n_rows)
    columns = {}
    for name, width in (("img", 256), ("txt", 384)):
        latent = rng.normal(size=(n_classes, 12))[y] * 0.5 + rng.normal(size=(n_rows, 12))
        basis = np.linalg.qr(rng.normal(size=(width, 12)))[0].T
        block = latent @ basis * 0.2 + rng.normal(size=(n_rows, width)) * 0.02
        columns.update({f"{name}{j}": block[:, j] for j in range(width)})
    for j in range(3):
        columns[f"weak{j}"] = (y == j) * 0.6 + rng.normal(size=n_rows)  # real, but alone far below the embeddings
        columns[f"noise{j}"] = rng.normal(size=n_rows)
    return pd.DataFrame(columns), y


@pytest.fixture(scope="module")
def table():
    return _embedding_like_table()


@pytest.fixture(scope="module")
def accuracy(table):
    """Cross-validated accuracy of ``method`` with the embeddings and the ``extra`` branches, each computed once."""
    X, y = table
    return functools.cache(lambda method, *extra: _accuracy(X, y, _branches(X, *extra), method))


def _branches(X, *extra):
    chosen = [("image", FunctionTransformer(), [c for c in X if c.startswith("img")]),
              ("text", FunctionTransformer(), [c for c in X if c.startswith("txt")])]
    return chosen + [(name, StandardScaler(), [f"{name}{j}" for j in range(3)]) for name in extra]


def _accuracy(X, y, branches, method):
    model = make_pipeline(ModalityFusion(branches, method=method), LogisticRegression(max_iter=3000))
    return cross_val_score(model, X, y, cv=StratifiedKFold(3, shuffle=True, random_state=0)).mean()


def test_a_narrow_block_weighs_like_columns_of_a_64_column_block(table):
    X, y = table
    fusion = ModalityFusion(_branches(X, "weak"), method="concat")
    fused = fusion.fit_transform(X, y)
    widths = list(fusion.block_widths_.values())
    edges = np.cumsum([0] + widths)
    spreads = [fused[:, a:b].var(axis=0).sum() for a, b in zip(edges[:-1], edges[1:])]
    # Embedding blocks at unit total variance; 3 columns at 3/64 of it: each column as one of 64 equal ones.
    np.testing.assert_allclose(spreads, [1.0, 1.0, 3 / 64], rtol=1e-3)


def test_narrow_blocks_without_an_embedding_are_weighed_against_each_other(table):
    # A lone table (the CLI's "table only" baseline) shrunk to 3/64 of a unit left LogisticRegression() underfitting.
    X, y = table
    X = X.assign(**{f"more{j}": X[f"weak{j % 3}"] + j for j in range(30)})
    for branches, expected in (([("weak", StandardScaler(), ["weak0", "weak1", "weak2"])], [1.0]),
                               ([("weak", StandardScaler(), ["weak0", "weak1", "weak2"]),
                                 ("more", StandardScaler(), [f"more{j}" for j in range(30)])], [3 / 30, 1.0])):
        fusion = ModalityFusion(branches, method="concat")
        fused = fusion.fit_transform(X, y)
        edges = np.cumsum([0] + list(fusion.block_widths_.values()))
        spreads = [fused[:, a:b].var(axis=0).sum() for a, b in zip(edges[:-1], edges[1:])]
        np.testing.assert_allclose(spreads, expected, rtol=1e-3)


@pytest.mark.parametrize("method", ["concat", "average", "weighted", "gated"])
def test_a_weak_branch_costs_at_most_a_point(accuracy, method):
    # Scaled to unit total variance as the embeddings were, the weak block cost concatenation 3 points here; with
    # ridge predictions for evidence (not calibrated log-probabilities) it cost the average 2.7.
    assert accuracy(method, "weak") >= accuracy(method) - 0.01


@pytest.mark.parametrize("method", ["concat", "average", "weighted", "gated"])
def test_a_branch_of_pure_noise_costs_at_most_a_point(accuracy, method):
    assert accuracy(method, "noise") >= accuracy(method) - 0.01


def test_evidence_is_calibrated_so_a_modality_that_knows_little_speaks_softly():
    from skmm.fusion._alignment import TargetAlignment

    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 600)
    strong = np.eye(3)[y] * 2 + rng.normal(size=(600, 3))
    weak = np.eye(3)[y] * 0.2 + rng.normal(size=(600, 3))
    alignment = TargetAlignment().fit([strong, weak], [np.ones(600, bool)] * 2, y)
    spread = [alignment.transform(block, i).std() for i, block in enumerate((strong, weak))]
    assert spread[1] < spread[0] / 4  # log-probabilities: nearly flat where the modality knows little
    log_proba = alignment.transform(strong, 0)
    np.testing.assert_allclose(log_proba.sum(axis=1), 0, atol=1e-5)  # centred across classes
    assert (log_proba.argmax(axis=1) == y).mean() > 0.7


def test_binary_multilabel_and_a_class_a_modality_never_saw():
    from skmm.fusion._alignment import TargetAlignment

    rng = np.random.default_rng(0)
    block = rng.normal(size=(200, 5))
    binary = (block[:, 0] > 0).astype(int)
    odds = TargetAlignment().fit([block], [np.ones(200, bool)], binary).transform(block, 0)
    assert odds.shape == (200, 1) and np.corrcoef(odds[:, 0], block[:, 0])[0, 1] > 0.9  # one log-odds column
    labels = np.column_stack([binary, block[:, 1] > 0, np.ones(200, int)])  # the last label always on
    odds = TargetAlignment().fit([block], [np.ones(200, bool)], labels.astype(int)).transform(block, 0)
    assert odds.shape == (200, 3) and np.all(odds[:, 2] == 0)  # a constant label: no evidence either way
    y = np.repeat([0, 1, 2], [80, 80, 40])
    present = y != 2  # the second modality is missing on every row of class 2
    alignment = TargetAlignment().fit([block, block[present]], [np.ones(200, bool), present], y)
    second = alignment.transform(block, 1)
    assert second.shape == (200, 3) and np.all(second[:, 2] <= second[:, :2].min(axis=1) + 1e-6)


def test_an_alignment_saved_before_the_calibration_predicts_as_it_did(tmp_path):
    import pickle

    from skmm.fusion._alignment import TargetAlignment

    rng = np.random.default_rng(0)
    block, y = rng.normal(size=(100, 4)), rng.integers(0, 3, 100)
    alignment = TargetAlignment().fit([block], [np.ones(100, bool)], y)
    del alignment.calibrations_  # as such a build saved it
    loaded = pickle.loads(pickle.dumps(alignment))
    np.testing.assert_allclose(loaded.transform(block, 0), alignment.ridges_[0].predict(block))
