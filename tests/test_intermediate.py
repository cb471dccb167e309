"""IntermediateFeatures: a backbone read below its output, through the encoder's batching and cache."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from skmm import ImageEncoder, TabularEncoder, TextEncoder
from skmm.datasets import make_multimodal_classification
from skmm.encoders import EncodingError, IntermediateFeatures
from skmm.encoders.trunks import ImageSplit, TrunkSplitError

from .conftest import ATOL, DEVICE, TINY_IMAGE
from .test_encoders import API_CHECKS


@pytest.fixture(scope="module")
def table():
    return make_multimodal_classification(n_samples=12, image_size=32, random_state=0)[0]


def test_the_last_text_layer_averaged_is_the_mean_pooled_embedding(tiny_text_model, table):
    encoder = TextEncoder(tiny_text_model, device=DEVICE, normalize=False)  # its pooling: the mean of the tokens
    features = IntermediateFeatures(encoder, depths=0).fit(table["text"])
    np.testing.assert_allclose(features.transform(table["text"]), encoder.fit_transform(table["text"]), atol=ATOL)
    assert features.depths_ == (0,) and features.n_features_out_ == 128


def test_text_depths_are_hidden_states_below_the_top_layers(tiny_mpnet_model, table):
    # Two layers: depth 1 is what enters the last one, the first layer's output.
    encoder = TextEncoder(tiny_mpnet_model, device=DEVICE)
    features = IntermediateFeatures(encoder, depths=(1, 0)).fit(table["text"])
    st = features.encoder_.load_backbone().module
    tokens = dict(st.tokenizer(list(table["text"][:3]), padding=True, return_tensors="pt"))
    with torch.inference_mode():
        states = st[0].auto_model(**tokens, output_hidden_states=True).hidden_states
    mask = tokens["attention_mask"][..., None].float()
    expected = torch.cat([(states[k] * mask).sum(1) / mask.sum(1) for k in (-2, -1)], dim=1).numpy()
    assert len(states) == 3
    np.testing.assert_allclose(features.transform(table["text"][:3]), expected, atol=ATOL)


def test_an_image_read_at_the_top_is_the_encoders_embedding_and_its_maximum(table):
    encoder = ImageEncoder(**TINY_IMAGE)
    features = IntermediateFeatures(encoder, depths=0).fit(table["image"])
    pooled = features.transform(table["image"])
    embedding = encoder.fit_transform(table["image"])
    width = embedding.shape[1]
    assert pooled.shape == (12, 2 * width) and features.get_feature_names_out()[0] == "intermediatefeatures0"
    np.testing.assert_allclose(pooled[:, :width], embedding, atol=ATOL)  # the mean: the encoder's own pooling
    assert (pooled[:, width:] >= pooled[:, :width] - 1e-5).all()  # the maximum of each channel


def test_auto_depths_a_third_of_a_cnns_blocks_from_the_top_and_a_text_models_last_layers(tiny_text_model, table):
    features = IntermediateFeatures(ImageEncoder(**TINY_IMAGE)).fit(table["image"])
    bundle = features.encoder_.load_backbone()
    n_blocks = len(ImageSplit.of(bundle.module, torch.randn(2, 3, 32, 32), bundle.module).blocks)
    assert features.depths_ == (round(n_blocks / 3),) and 0 < features.depths_[0] < n_blocks
    text = IntermediateFeatures(TextEncoder(tiny_text_model, device=DEVICE)).fit(table["text"])
    assert text.depths_ == (0,)  # a one-layer model: its last four layers are its one


def test_depths_out_of_range_and_a_non_cnn_image_model_are_refused(tiny_text_model, table):
    with pytest.raises(ValueError, match=r"depths must count blocks from the top, each in \[0, 0\]"):
        IntermediateFeatures(TextEncoder(tiny_text_model, device=DEVICE), depths=(1, 0)).fit(table["text"])
    with pytest.raises(TrunkSplitError):
        IntermediateFeatures(ImageEncoder(model="timm:test_vit", weights=None, device=DEVICE)).fit(table["image"])
    with pytest.raises((TypeError, ValueError), match="'encoder' parameter|ImageEncoder or a TextEncoder"):
        IntermediateFeatures(TabularEncoder()).fit(table[["text"]])


def test_each_item_is_read_once_and_clones_read_the_cache(tiny_text_model, table, embedded_items):
    features = IntermediateFeatures(TextEncoder(tiny_text_model, device=DEVICE)).fit(table["text"])
    first = features.transform(table["text"])
    again = clone(features).fit(table["text"]).transform(table["text"])
    np.testing.assert_array_equal(again, first)
    assert len(embedded_items) == table["text"].nunique()
    # Not the encoder's embedding keys: the encoder alone embeds every text again.
    TextEncoder(tiny_text_model, device=DEVICE).fit_transform(table["text"])
    assert len(embedded_items) == 2 * table["text"].nunique()
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(features)).transform(table["text"]), first)


def test_an_unreadable_item_follows_the_encoders_on_error(table):
    images = list(table["image"][:3]) + [b"not an image"]
    with pytest.raises(EncodingError, match="could not be encoded"):
        IntermediateFeatures(ImageEncoder(**TINY_IMAGE)).fit(images).transform(images)
    with pytest.warns(UserWarning, match="could not be encoded"):
        features = IntermediateFeatures(ImageEncoder(**TINY_IMAGE, on_error="zero")).fit(images).transform(images)
    assert (features[3] == 0).all() and (features[:3] != 0).any(axis=1).all()


# sklearn's API checks, at the default depths; the data-driven ones feed numeric arrays, not a column of items
# (tags as the encoders'), so their properties are tested below on items (see test_encoders.py's map).
@pytest.mark.parametrize("check", API_CHECKS, ids=lambda c: c.__name__)
def test_sklearn_api_checks(check, tiny_text_model):
    for features in (IntermediateFeatures(ImageEncoder(**TINY_IMAGE)),
                     IntermediateFeatures(TextEncoder(tiny_text_model, device=DEVICE))):
        check("IntermediateFeatures", features)


def test_the_transformer_contract_on_items(tiny_mpnet_model, table):
    texts = list(table["text"])
    features = IntermediateFeatures(TextEncoder(tiny_mpnet_model, device=DEVICE, cache=None), depths=[1, 0])
    with pytest.raises(NotFittedError):
        features.transform(texts)
    before = features.get_params()
    assert features.fit(texts) is features and features.get_params() == before
    reference = features.transform(texts)
    assert features.depths_ == (1, 0) and reference.shape == (len(texts), 256) and reference.dtype == np.float32
    np.testing.assert_allclose(clone(features).fit_transform(texts), reference, atol=ATOL)
    np.testing.assert_array_equal(features.fit(texts).transform(texts), reference)  # idempotent
    order = np.random.RandomState(0).permutation(len(texts))
    one_by_one = clone(features).set_params(encoder__batch_size=1).fit(texts)
    np.testing.assert_allclose(one_by_one.transform([texts[i] for i in order]), reference[order], atol=ATOL)
    np.testing.assert_allclose(features.transform(texts[2:5]), reference[2:5], atol=ATOL)
    names = features.get_feature_names_out()
    assert len(names) == 256 and names[0] == "intermediatefeatures0"
    with pytest.raises(ValueError, match="empty"):
        clone(features).fit([])
