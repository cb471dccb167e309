"""Messy inputs, missing modalities, safe persistence and reproducibility.

Every bad input is generated here (no fixture files). Each case ends in a clear
error that names the row and the column, or in a documented policy
(docs/user_guide.md, "Bad input and missing modalities").
"""

from __future__ import annotations

import io
import math
import os
import pickle
import subprocess
import sys

import joblib
import numpy as np
import pandas as pd
import pytest
from PIL import Image
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline

import skmm.encoders._base as encoder_base
from skmm import (EncodingError, ImageEncoder, TextEncoder, TorchMLPClassifier, make_fusion,
                  persistence)
from skmm.datasets import make_multimodal_classification

from .conftest import DEVICE, random_images


def _jpeg_bytes(size=(48, 40), mode="RGB"):
    buffer = io.BytesIO()
    Image.fromarray(random_images(1, size=64)[0]).resize(size).convert(mode).save(buffer, format="JPEG")
    return buffer.getvalue()


@pytest.fixture
def image_encoder(tiny_image_params):
    return ImageEncoder(**tiny_image_params).fit(random_images(1))


@pytest.fixture
def text_encoder(tiny_text_params):
    return TextEncoder(**tiny_text_params).fit(["x"])


def _column(items, name="photo"):
    return pd.Series(items, index=[f"r{i}" for i in range(len(items))], name=name)


def _expect_row_error(encoder, items, bad_row, pattern):
    """The error names the row label, the column, and what was wrong."""
    with pytest.raises(EncodingError) as error:
        encoder.transform(_column(items))
    message = str(error.value)
    assert f"row 'r{bad_row}'" in message and "'photo'" in message, message
    assert pattern.lower() in message.lower(), message


# -- images: unreadable -----------------------------------------------------------

def test_image_missing_file(image_encoder, tmp_path):
    _expect_row_error(image_encoder, [_jpeg_bytes(), str(tmp_path / "nope.jpg")], 1, "does not exist")


def test_image_zero_byte_file(image_encoder, tmp_path):
    (tmp_path / "empty.jpg").write_bytes(b"")
    _expect_row_error(image_encoder, [str(tmp_path / "empty.jpg")], 0, "cannot identify image")


def test_image_truncated_jpeg(image_encoder, tmp_path):
    data = _jpeg_bytes((200, 200))
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
    _expect_row_error(image_encoder, [_jpeg_bytes(), str(tmp_path / "cut.jpg")], 1, "truncated")


def test_image_text_file_named_jpg(image_encoder, tmp_path):
    (tmp_path / "notes.jpg").write_text("this is not a picture")
    _expect_row_error(image_encoder, [str(tmp_path / "notes.jpg")], 0, "cannot identify image")


def test_image_unsupported_format(image_encoder, tmp_path):
    (tmp_path / "logo.svg").write_text('<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>')
    _expect_row_error(image_encoder, [str(tmp_path / "logo.svg")], 0, "cannot identify image")


def test_image_directory_path(image_encoder, tmp_path):
    _expect_row_error(image_encoder, [str(tmp_path)], 0, "is a directory")


@pytest.mark.parametrize("missing", [None, float("nan"), np.nan, pd.NA])
def test_image_missing_value(image_encoder, missing):
    _expect_row_error(image_encoder, [_jpeg_bytes(), missing], 1, "missing value")


def test_image_unsupported_python_type(image_encoder):
    _expect_row_error(image_encoder, [_jpeg_bytes(), 12345], 1, "unsupported image type int")


def test_image_decompression_bomb_guard_stays_on(image_encoder, monkeypatch):
    """Pillow's guard is never switched off: an image above 2 x MAX_IMAGE_PIXELS is a row error."""
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # so that a small image stands in for a huge one
    _expect_row_error(image_encoder, [_jpeg_bytes((80, 80))], 0, "decompression bomb")


def test_image_errors_are_raised_before_any_model_work(image_encoder, tmp_path, monkeypatch):
    def must_not_run(*args, **kwargs):
        raise AssertionError("the model ran before the cheap checks")

    monkeypatch.setattr(encoder_base, "run_batched", must_not_run)
    items = [_jpeg_bytes()] * 50 + [str(tmp_path / "late.jpg")]
    _expect_row_error(image_encoder, items, 50, "does not exist")


@pytest.mark.parametrize("policy", ["zero", "nan"])
def test_image_on_error_fills_warns_and_masks(tiny_image_params, tmp_path, policy):
    (tmp_path / "bad.jpg").write_bytes(b"garbage")
    encoder = ImageEncoder(**tiny_image_params, on_error=policy).fit(random_images(1))
    with pytest.warns(UserWarning, match=r"row 'r1'.*row 'r2'"):
        embeddings, failed = encoder.encode(_column([_jpeg_bytes(), str(tmp_path / "bad.jpg"), None]))
    assert failed.tolist() == [False, True, True]
    assert np.isfinite(embeddings[0]).all()
    if policy == "zero":
        assert not embeddings[1:].any()
    else:
        assert np.isnan(embeddings[1:]).all()


# -- images: odd but valid ---------------------------------------------------------

@pytest.mark.parametrize("mode", ["RGBA", "LA", "CMYK", "1", "L"])
def test_image_modes(image_encoder, mode):
    image = Image.fromarray(random_images(1)[0]).convert(mode)
    assert np.isfinite(image_encoder.transform([image])).all()


def test_image_palette_with_transparency(image_encoder):
    image = Image.fromarray(random_images(1)[0]).convert("P")
    image.info["transparency"] = 0
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    assert np.isfinite(image_encoder.transform([buffer.getvalue()])).all()


def test_image_16_bit(image_encoder):
    image = Image.fromarray((np.arange(32 * 32, dtype=np.uint16).reshape(32, 32) * 60))
    assert image.mode.startswith("I;16")
    assert np.isfinite(image_encoder.transform([image])).all()


def test_image_one_pixel(image_encoder):
    assert np.isfinite(image_encoder.transform([np.zeros((1, 1, 3), dtype=np.uint8)])).all()


def test_image_float_array(image_encoder):
    assert np.isfinite(image_encoder.transform([np.random.RandomState(0).rand(16, 16, 3)])).all()


# -- texts -------------------------------------------------------------------------

@pytest.mark.parametrize("missing", [None, float("nan"), "", "   \n\t "])  # a blank text is a missing value
def test_text_missing_value_is_an_error_by_default(text_encoder, missing):
    with pytest.raises(EncodingError, match=r"row 'r1': missing value.*'caption'|'caption'.*row 'r1': missing"):
        text_encoder.transform(_column(["ok", missing], name="caption"))


@pytest.mark.parametrize("text", ["😀🎉 日本語のテキスト Привет مرحبا", "x" * 100_000,
                                  b"caf\xe9 \xff invalid utf-8", 42, 3.25, np.int64(7)])
def test_text_odd_but_valid(text_encoder, text):
    embedding = text_encoder.transform([text])
    assert embedding.shape == (1, text_encoder.embedding_dim_) and np.isfinite(embedding).all()


def test_text_unsupported_python_type(text_encoder):
    with pytest.raises(EncodingError, match=r"row 'r0'.*text must be str or bytes, got dict"):
        text_encoder.transform(_column([{"a": 1}]))


def test_long_text_is_truncated_not_an_error(text_encoder):
    long_text = "fire " * 20_000
    np.testing.assert_allclose(text_encoder.transform([long_text]), text_encoder.transform([long_text + "sea"]),
                               atol=1e-6)  # everything past max_seq_length is cut


# -- tables ------------------------------------------------------------------------

@pytest.fixture
def fusion(tiny_image_params, tiny_text_params):
    return make_fusion((ImageEncoder(**tiny_image_params), "image"), (TextEncoder(**tiny_text_params), "text"))


@pytest.fixture(scope="module")
def table():
    return make_multimodal_classification(n_samples=160, image_size=32, random_state=1)


def test_table_missing_column(fusion, table):
    X, _ = table
    with pytest.raises(ValueError, match=r"modality 'text' reads column\(s\) \['text'\], which X does not have"):
        fusion.fit(X[["image"]])


def test_table_columns_of_different_lengths(fusion):
    with pytest.raises(ValueError, match="different lengths"):
        fusion.fit({"image": random_images(3), "text": ["a", "b"]})


def test_table_empty(fusion, table):
    with pytest.raises(ValueError, match="empty"):
        fusion.fit(table[0].iloc[:0])


def test_table_single_row(fusion, table):
    X, _ = table
    assert fusion.fit(X.iloc[:1]).transform(X.iloc[:1]).shape == (1, 256 + 128)


def test_table_error_names_row_and_column(fusion, table, tmp_path):
    X, _ = table
    X = X.iloc[:3].copy()
    X.index = ["a", "b", "c"]
    X.loc["c", "image"] = str(tmp_path / "gone.png")
    with pytest.raises(EncodingError, match=r"column 'image'.*row 'c'"):
        fusion.fit(X)


def test_table_unseen_labels_in_partial_fit(table):
    with pytest.raises(ValueError, match="labels not seen"):
        clf = TorchMLPClassifier(max_epochs=2, device=DEVICE).partial_fit(np.zeros((4, 3)), [0, 1, 0, 1],
                                                                            classes=[0, 1])
        clf.partial_fit(np.zeros((2, 3)), [0, 2])


# -- missing modalities ----------------------------------------------------------

def test_a_row_missing_a_modality_is_representable(fusion, table):
    X, y = table
    holey = X.copy()
    holey.loc[holey.index[0], "image"] = None
    holey.loc[holey.index[1], "text"] = np.nan
    out = fusion.fit(holey).transform(holey)
    assert np.isfinite(out).all() and out.shape[0] == len(X)


@pytest.mark.parametrize("method", ["concat", "average"])
def test_model_trained_on_complete_rows_predicts_rows_missing_the_image(method, tiny_image_params,
                                                                        tiny_text_params):
    X, y = make_multimodal_classification(n_samples=400, image_size=32, random_state=3)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.4, random_state=0, stratify=y)
    logreg = LogisticRegression(C=10, max_iter=3000)
    fused = Pipeline([("fuse", make_fusion((ImageEncoder(**tiny_image_params), "image"),
                                           (TextEncoder(**tiny_text_params), "text"), method=method)),
                      ("clf", logreg)]).fit(X_train, y_train)
    text_only = Pipeline([("fuse", make_fusion((TextEncoder(**tiny_text_params), "text"))),
                          ("clf", LogisticRegression(C=10, max_iter=3000))]).fit(X_train, y_train)
    no_image = X_test.assign(image=None)
    fused_accuracy = fused.score(no_image, y_test)
    text_accuracy = text_only.score(X_test, y_test)
    assert fused_accuracy > text_accuracy - 0.08, (fused_accuracy, text_accuracy)
    assert fused.score(X_test, y_test) > text_accuracy + 0.05  # and with the image it does better


# -- persistence -------------------------------------------------------------------

@pytest.fixture(scope="module")
def fitted_pipeline(tiny_text_model):
    X, y = make_multimodal_classification(n_samples=60, image_size=48, random_state=2)
    pipeline = Pipeline([
        ("fuse", make_fusion((ImageEncoder(device=DEVICE), "image"), (TextEncoder(tiny_text_model, device=DEVICE),
                                                                       "text"), method="average")),
        ("clf", TorchMLPClassifier(hidden_layer_sizes=(16,), max_epochs=100, device=DEVICE, random_state=0)),
    ]).fit(X, y)
    return pipeline, X


def test_joblib_round_trip_without_backbone_weights(fitted_pipeline, tmp_path):
    pipeline, X = fitted_pipeline
    joblib.dump(pipeline, tmp_path / "model.joblib")
    size = (tmp_path / "model.joblib").stat().st_size
    assert size < 1_500_000, size  # EfficientNet-Lite0's weights alone are 13 MB
    restored = joblib.load(tmp_path / "model.joblib")
    np.testing.assert_array_equal(restored.predict_proba(X), pipeline.predict_proba(X))


def test_skops_round_trip_with_explicit_trusted_types(fitted_pipeline, tmp_path):
    pipeline, X = fitted_pipeline
    persistence.dump(pipeline, tmp_path / "model.skops")
    assert (tmp_path / "model.skops").stat().st_size < 1_500_000
    assert persistence.untrusted_types(tmp_path / "model.skops") == []
    restored = persistence.load(tmp_path / "model.skops")
    np.testing.assert_array_equal(restored.predict_proba(X), pipeline.predict_proba(X))


def test_skops_round_trip_of_a_gated_fusion(tiny_image_params, tiny_text_model, tmp_path):
    X, y = make_multimodal_classification(n_samples=60, image_size=32, random_state=3)
    pipeline = Pipeline([
        ("fuse", make_fusion((ImageEncoder(**tiny_image_params), "image"),
                             (TextEncoder(tiny_text_model, device=DEVICE), "text"), method="gated")),
        ("clf", LogisticRegression()),
    ]).fit(X, y)
    persistence.dump(pipeline, tmp_path / "gated.skops")
    assert persistence.untrusted_types(tmp_path / "gated.skops") == []  # the learned gate is a trusted type
    restored = persistence.load(tmp_path / "gated.skops")
    np.testing.assert_array_equal(restored.predict_proba(X), pipeline.predict_proba(X))


class _Custom(LogisticRegression):
    pass


def test_skops_load_refuses_types_nobody_trusted(tmp_path):
    model = _Custom().fit([[0.0], [1.0]], [0, 1])
    persistence.dump(model, tmp_path / "custom.skops")
    with pytest.raises(persistence.UntrustedTypesError, match="_Custom"):
        persistence.load(tmp_path / "custom.skops")
    name = f"{_Custom.__module__}._Custom"
    assert isinstance(persistence.load(tmp_path / "custom.skops", trusted=[name]), _Custom)


def test_weight_files_load_with_weights_only(tmp_path, monkeypatch):
    import torch
    import torchvision

    path = tmp_path / "weights.pt"
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), path)
    calls = []
    original = torch.load

    def spy(*args, **kwargs):
        calls.append(kwargs.get("weights_only"))
        return original(*args, **kwargs)

    monkeypatch.setattr(torch, "load", spy)
    ImageEncoder("resnet18", weights=str(path), device=DEVICE, image_size=32).fit(random_images(1))
    assert calls == [True]


_SCRIPT = """
import sys, numpy as np
from sklearn.pipeline import Pipeline
from skmm import ImageEncoder, TextEncoder, TorchMLPClassifier, make_fusion
from skmm.datasets import make_multimodal_classification
X, y = make_multimodal_classification(n_samples=80, image_size=32, random_state=5)
pipe = Pipeline([("fuse", make_fusion((ImageEncoder("timm:test_efficientnet", weights=None, device="cpu"), "image"),
                                      (TextEncoder(sys.argv[1], device="cpu"), "text"), method="weighted")),
                 ("clf", TorchMLPClassifier(hidden_layer_sizes=(16,), max_epochs=15, device="cpu", random_state=7))])
sys.stdout.write(pipe.fit(X, y).predict_proba(X).tobytes().hex())
"""


def test_same_random_state_same_predictions_across_processes(tiny_text_model):
    outputs = [subprocess.run([sys.executable, "-c", _SCRIPT, tiny_text_model], capture_output=True, text=True,
                              check=True).stdout for _ in range(2)]
    assert len(outputs[0]) > 1000 and outputs[0] == outputs[1]


def test_pickled_encoder_has_no_torch_objects_in_state(fitted_pipeline):
    pipeline, _ = fitted_pipeline
    state = pipeline.named_steps["clf"].__getstate__()
    import torch

    def walk(value):
        if isinstance(value, dict):
            return any(walk(v) for v in value.values())
        if isinstance(value, (list, tuple)):
            return any(walk(v) for v in value)
        return isinstance(value, (torch.Tensor, torch.nn.Module, torch.Generator))

    assert not walk(state)
    assert math.isfinite(pickle.loads(pickle.dumps(pipeline)).predict_proba(fitted_pipeline[1]).sum())


def test_pickling_leaves_the_live_objects_intact(fitted_pipeline):
    pipeline, X = fitted_pipeline
    before = pipeline.predict_proba(X)
    pickle.dumps(pipeline)
    assert pipeline.named_steps["fuse"].named_transformers_["image"]._bundle is not None
    np.testing.assert_array_equal(pipeline.predict_proba(X), before)


# -- naming rows, relative paths, failed items inside a fusion ------------------------

def test_rows_are_named_by_the_index_name_and_the_error_carries_them(tiny_image_params, tmp_path):
    X, _ = make_multimodal_classification(n_samples=3, image_size=32, image_format="path", image_dir=tmp_path,
                                          random_state=0)
    X.index = pd.RangeIndex(2, 5, name="line")  # as the command line labels a CSV's rows
    X.loc[3, "image"] = str(tmp_path / "gone.jpg")
    with pytest.raises(EncodingError, match=r"column 'image'.*\(line 3: file .*gone.jpg' does not exist\)") as info:
        ImageEncoder(**tiny_image_params).fit(X["image"]).transform(X["image"])
    assert info.value.column == "image" and list(info.value.problems) == [3]
    assert "does not exist" in info.value.problems[3]


def test_root_resolves_relative_image_paths(tiny_image_params, tmp_path, monkeypatch):
    X, _ = make_multimodal_classification(n_samples=4, image_size=32, image_format="path",
                                          image_dir=tmp_path / "photos", random_state=0)
    relative = [os.path.relpath(path, tmp_path) for path in X["image"]]
    expected = ImageEncoder(**tiny_image_params).fit(X["image"]).transform(X["image"])
    encoder = ImageEncoder(**tiny_image_params, root=tmp_path)
    np.testing.assert_allclose(encoder.fit(relative).transform(relative), expected, atol=1e-6)
    monkeypatch.chdir(tmp_path / "photos")  # the working directory no longer matters
    np.testing.assert_allclose(encoder.transform(relative), expected, atol=1e-6)
    with pytest.raises(EncodingError, match="does not exist"):
        ImageEncoder(**tiny_image_params).fit(relative).transform(relative)  # no root: the working directory


def test_an_unreadable_item_in_a_fusion_counts_as_missing_under_a_tolerant_policy(tiny_image_params,
                                                                                  tiny_text_params, tmp_path):
    X, y = make_multimodal_classification(n_samples=40, image_size=32, random_state=0)
    broken = X.copy()
    broken.loc[5, "image"] = str(tmp_path / "gone.jpg")
    broken.loc[9, "image"] = None
    fusion = make_fusion((ImageEncoder(**tiny_image_params, on_error="zero"), "image"),
                         (TextEncoder(**tiny_text_params), "text"), method="concat").fit(X, y)
    with pytest.warns(UserWarning, match="could not be encoded"):
        out = fusion.transform(broken)
    np.testing.assert_allclose(out[5, :256], out[9, :256], atol=1e-6)  # a broken file is a missing image, not zeros
    np.testing.assert_allclose(out[5, :256], fusion.fill_values_["image"], atol=1e-6)
