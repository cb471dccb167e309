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


@pytest.mark.parametrize("method", ["concat", "weighted", "gated"])
def test_a_weak_branch_costs_no_accuracy(accuracy, method):
    # Scaled to unit total variance as the embeddings were, the weak block cost concatenation 3 points here.
    assert accuracy(method, "weak") >= accuracy(method) - 0.01


@pytest.mark.parametrize("method", ["concat", "average", "weighted", "gated"])
def test_a_branch_of_pure_noise_costs_at_most_a_point(accuracy, method):
    assert accuracy(method, "noise") >= accuracy(method) - 0.01


def test_average_fusion_gives_a_weak_branch_an_equal_say(accuracy):
    # Documented, not hidden: an equal-weight mean of evidence lets a weak modality's noise in; learned weights
    # give it what it earns. If the average stops losing here, the user guide's advice should change with it.
    assert accuracy("average", "weak") < accuracy("average")
    assert accuracy("weighted", "weak") > accuracy("average", "weak")
