"""Compiled CPU backends (OpenVINO, ONNX Runtime): the same embeddings as torch, one export reused everywhere."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from skmm import ImageEncoder, TextEncoder, clear_model_registry
from skmm.encoders import _backends
from skmm.encoders._backends import resolve_backend

from .conftest import random_images

COMPILED = [name for name in ("openvino", "onnxruntime") if _backends.is_installed(name)]
pytestmark = pytest.mark.skipif(not COMPILED, reason="neither openvino nor onnxruntime is installed")


def _cosines(a, b):
    return (a * b).sum(axis=1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def _agree(make, items):
    reference = make("torch").fit(items).transform(items)
    for backend in COMPILED:
        embeddings = make(backend).fit(items).transform(items)
        assert embeddings.shape == reference.shape
        assert _cosines(embeddings, reference).min() >= 0.9999, backend


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    from skmm.datasets import make_multimodal_classification

    X, _ = make_multimodal_classification(n_samples=12, image_size=96, image_format="path",
                                          image_dir=tmp_path_factory.mktemp("photos"), random_state=0)
    return list(X["image"])


@pytest.mark.real_model
def test_offline_lite0_and_minilm_agree_with_torch(photos):
    _agree(lambda backend: ImageEncoder(device="cpu", cache=None, backend=backend), photos)
    texts = ["a cat on a mat", ".", "Ünïcödé and emoji 🎉", "a much longer text " * 40, "short"]
    _agree(lambda backend: TextEncoder(device="cpu", cache=None, backend=backend), texts)


@pytest.mark.parametrize("model", ["timm:test_efficientnet", "torchvision:resnet18"])
def test_timm_and_torchvision_models_agree_with_torch(model):
    images = random_images(5, size=40, seed=1)
    _agree(lambda backend: ImageEncoder(model, weights=None, device="cpu", cache=None, backend=backend), images)


def test_tiny_text_model_agrees_with_torch(tiny_text_params):
    _agree(lambda backend: TextEncoder(**{**tiny_text_params, "device": "cpu"}, cache=None, backend=backend),
           ["fire city", "a photo of a kitten", "word " * 30])


def test_the_export_is_reused_by_clones_and_other_processes(tiny_image_params, tmp_path, monkeypatch):
    from sklearn.base import clone

    monkeypatch.setenv("SKMM_EXPORT_DIR", str(tmp_path))
    clear_model_registry()
    params = {**tiny_image_params, "device": "cpu", "backend": COMPILED[0], "cache": None}
    before = _backends.exports_made
    first = ImageEncoder(**params).fit(random_images(1))
    assert _backends.exports_made == before + 1
    clear_model_registry()  # a clone that has to load the model again: reads the export, does not re-export
    clone(first).fit(random_images(1))
    assert _backends.exports_made == before + 1
    script = (f"from skmm import ImageEncoder\nfrom skmm.encoders import _backends\n"
              f"ImageEncoder('timm:test_efficientnet', weights=None, device='cpu', backend={params['backend']!r})"
              f".fit([__import__('numpy').zeros((8, 8, 3), 'uint8')])\nprint(_backends.exports_made)")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True,
                            env={**os.environ, "SKMM_EXPORT_DIR": str(tmp_path)})
    assert result.stdout.strip().splitlines()[-1] == "0"  # the other process found it on disk
    assert len(list(tmp_path.glob("*.onnx"))) == 1


def test_a_corrupted_export_is_rebuilt(tiny_image_params, tmp_path, monkeypatch):
    monkeypatch.setenv("SKMM_EXPORT_DIR", str(tmp_path))
    clear_model_registry()
    params = {**tiny_image_params, "device": "cpu", "backend": COMPILED[0], "cache": None}
    images = random_images(3)
    expected = ImageEncoder(**params).fit(images).transform(images)
    (export,) = tmp_path.glob("*.onnx")
    export.write_bytes(export.read_bytes()[: export.stat().st_size // 2])  # torn, as by a crash
    clear_model_registry()
    before = _backends.exports_made
    np.testing.assert_allclose(ImageEncoder(**params).fit(images).transform(images), expected, atol=1e-5)
    assert _backends.exports_made == before + 1


def test_a_missing_backend_is_a_clear_error(tiny_image_params, monkeypatch):
    monkeypatch.setattr(_backends, "is_installed", lambda name: name == "torch")
    with pytest.raises(ImportError, match=r"backend='onnxruntime' needs the 'onnxruntime' package.*pip install "
                                          r"'skmm\[onnx\]'"):
        ImageEncoder(**{**tiny_image_params, "backend": "onnxruntime", "device": "cpu"}).fit(random_images(1))
    assert resolve_backend("auto", "cpu") == "torch"  # auto falls back to what is there


def test_auto_picks_what_measured_fastest():
    expected = "openvino" if "openvino" in COMPILED else "torch"
    assert resolve_backend("auto", "cpu", "image") == expected
    assert resolve_backend("auto", "cpu", "text") == "torch"
    assert resolve_backend("auto", "cuda", "image") == "torch"
    with pytest.raises(ValueError, match="runs on the CPU"):
        resolve_backend("openvino", "cuda")


def test_backends_are_cached_apart(tiny_image_params):
    params = {**tiny_image_params, "device": "cpu"}
    keys = {backend: ImageEncoder(**params, backend=backend).fit(random_images(1)).fingerprint_
            for backend in ("torch", *COMPILED)}
    assert len(set(keys.values())) == len(keys)


def test_pickles_hold_no_exported_model(tiny_image_params):
    import pickle

    encoder = ImageEncoder(**{**tiny_image_params, "device": "cpu", "backend": COMPILED[0]}).fit(random_images(1))
    restored = pickle.loads(pickle.dumps(encoder))
    assert restored._bundle is None
    np.testing.assert_allclose(restored.transform(random_images(2)), encoder.transform(random_images(2)), atol=1e-5)


@pytest.mark.skipif("openvino" not in COMPILED, reason="openvino is not installed")
def test_openvino_does_not_pin_its_threads(tiny_image_params):
    """Pinned, the threads of two processes (Dask workers, a search's n_jobs) would share the first core."""
    encoder = ImageEncoder(**{**tiny_image_params, "device": "cpu", "backend": "openvino"}).fit(random_images(1))
    compiled = encoder.load_backbone().inference_module
    assert compiled._model.get_property("ENABLE_CPU_PINNING") is False


def test_threads_sharing_one_compiled_model_get_their_own_results(tiny_image_params):
    """Dask's threaded scheduler runs partitions in threads that share the registry's one model."""
    from concurrent.futures import ThreadPoolExecutor

    for backend in COMPILED:
        encoder = ImageEncoder(**{**tiny_image_params, "device": "cpu", "backend": backend, "cache": None})
        batches = [random_images(6, seed=seed) for seed in range(6)]
        encoder.fit(batches[0])
        expected = [encoder.transform(batch) for batch in batches]
        with ThreadPoolExecutor(3) as pool:
            results = list(pool.map(encoder.transform, batches))
        for got, want in zip(results, expected):
            np.testing.assert_allclose(got, want, atol=1e-5)
