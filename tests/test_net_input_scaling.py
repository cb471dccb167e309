"""The scale at which a MultimodalNet's head reads each modality: TorchMLPClassifier's, and old networks' own."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from skmm import ImageEncoder, MultimodalNetClassifier, TextEncoder
from skmm.datasets import make_multimodal_classification
from skmm.estimators import _net_modules

from .conftest import DEVICE


def _blocks(rows=200):
    """Two embeddings of 96 and 64 columns, one in a narrow cone far from the origin, one of uneven directions."""
    rng = np.random.default_rng(0)
    return [torch.as_tensor(rng.normal(3.0, 0.01, (rows, 96)), dtype=torch.float32),
            torch.as_tensor(rng.normal(0.0, 5.0, (rows, 64)) * np.linspace(0.1, 1, 64), dtype=torch.float32)]


def _check_mlp_scale(fused):
    """Centred, the average feature at unit variance (TorchMLPClassifier's standardize="global"), and the two
    blocks at equal total variance (as ModalityFusion weighs blocks of 64 columns or more)."""
    fused = fused[:, :160].double()
    variances = fused.var(dim=0, unbiased=False)
    np.testing.assert_allclose(fused.mean(dim=0).numpy(), 0.0, atol=1e-4)
    np.testing.assert_allclose(variances.mean().item(), 1.0, rtol=1e-4)
    np.testing.assert_allclose([variances[:96].sum().item(), variances[96:].sum().item()], [80.0, 80.0], rtol=1e-4)


def test_the_fused_input_has_unit_variance_per_feature_on_average_as_the_mlp_scales_it():
    """Each modality's block at unit total spread, then one gain: the concatenation reaches the head as
    TorchMLPClassifier's standardize="global" gives it ModalityFusion's concatenated blocks. Without the gain a
    1,664-wide input was ~29 times smaller, and the head's first layer learned that much slower (a point behind
    the MLP on a 16-class table)."""
    blocks, present = _blocks(), torch.ones((200, 2), dtype=torch.bool)
    fusion = _net_modules.FusionLayer("concat", [96, 64], 8, 0.0).eval()
    for m, block in enumerate(blocks):
        fusion.set_statistics(m, block)
    _check_mlp_scale(fusion([(None, None, block) for block in blocks], present))


def test_where_the_blocks_train_the_batch_is_scaled_alike():
    """A branch whose blocks train (``adapts``) is centred and scaled by each batch's own statistics, then by
    the same gain."""
    blocks, present = _blocks(), torch.ones((200, 2), dtype=torch.bool)
    fusion = _net_modules.FusionLayer("concat", [96, 64], 8, 0.0, adapts=[True, True]).train()
    _check_mlp_scale(fusion([(None, None, block) for block in blocks], present))


@pytest.mark.parametrize("saved_as", ["features", "block"])
def test_a_network_saved_with_an_earlier_input_scaling_loads_and_predicts_the_same(tiny_image_params,
                                                                                 tiny_text_model, monkeypatch,
                                                                                 saved_as):
    """Networks saved with a batch norm per feature (no "standardize" recorded), or with the blocks at unit
    total spread and no gain ("block"), rebuild their own input scaling, to the last bit."""
    X, y = make_multimodal_classification(n_samples=240, image_size=32, random_state=0)
    original = _net_modules.FusionLayer.__init__
    monkeypatch.setattr(_net_modules.FusionLayer, "__init__",  # the input treatment of networks saved before
                        lambda self, *args, **kwargs: original(self, *args[:4], standardize=saved_as,
                                                               adapts=kwargs.get("adapts")))
    if saved_as == "features":
        monkeypatch.setattr(_net_modules.FusionLayer, "set_statistics", lambda *args: None)
    modalities = [("image", ImageEncoder(**tiny_image_params), "image"),
                  ("text", TextEncoder(tiny_text_model, device=DEVICE), "text")]
    net = MultimodalNetClassifier(modalities, max_epochs=2, random_state=0, device=DEVICE).fit(X, y)
    if saved_as == "features":
        del net._architecture["standardize"]  # as those networks recorded their architecture
    assert net._architecture.get("standardize", "features") == saved_as
    expected = net.predict_proba(X)
    monkeypatch.undo()
    loaded = pickle.loads(pickle.dumps(net))
    assert loaded.network_.fusion.standardize == saved_as
    np.testing.assert_array_equal(loaded.predict_proba(X), expected)


def test_the_auto_head_rate_is_slower_where_validation_rows_choose_the_epoch(tiny_text_model):
    """learning_rate="auto": 3e-5 where early stopping keeps validation rows for good (the epoch is chosen on
    them), 1e-4 where a fixed epoch budget trains the head (3e-5 under-trains it there); a number is kept."""
    X, y = make_multimodal_classification(n_samples=120, image_size=32, random_state=0)

    def head_rate(**params):
        net = MultimodalNetClassifier([("text", TextEncoder(tiny_text_model, device=DEVICE), "text")], train_blocks=0,
                                      probe_epochs=2, random_state=0, device=DEVICE, **params)
        return net.fit(X, y)._head_rate

    assert head_rate(early_stopping=True) == 3e-5
    assert head_rate() == head_rate(early_stopping=False) == 1e-4  # 120 rows: "auto" holds none out
    assert head_rate(early_stopping=True, learning_rate=1e-3) == 1e-3
