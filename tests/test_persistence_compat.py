"""Models saved by skmm 0.1 (before the fusion wing became a package) still load and predict the same."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from skmm import persistence

LEGACY = Path(__file__).parent / "data" / "legacy_0.1.0"


@pytest.mark.real_model
@pytest.mark.parametrize("method", ["concat", "average", "weighted", "gated"])
def test_a_pipeline_saved_by_skmm_0_1_loads_and_predicts_the_same(method):
    inputs = np.load(LEGACY / "inputs.npz")
    X = pd.DataFrame({"image": list(inputs["images"]), "text": inputs["texts"]})
    assert "skmm._alignment.CCAAlignment" in persistence.TRUSTED_TYPES  # the old paths stay trusted
    model = persistence.load(LEGACY / f"{method}.skops")
    expected = np.load(LEGACY / f"{method}_proba.npy")
    # float64 predictions today against the float32 ones it made then: the last digits may move
    np.testing.assert_allclose(model.predict_proba(X), expected, atol=1e-6)
    np.testing.assert_array_equal(model.predict(X), model.classes_[expected.argmax(axis=1)])
