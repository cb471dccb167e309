"""Precision is skmm's decision, never a runtime's CPU-dependent default: fp32 on every CPU unless asked.

On a CPU with bf16 instructions OpenVINO compiles models for bf16 unless told otherwise; these tests hold on
any CPU. ``SKMM_TEST_OPENVINO_DEFAULT=bf16`` runs the whole suite as on such a CPU (see conftest.py).
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from skmm import ImageEncoder, TextEncoder, clear_model_registry
from skmm import _device
from skmm.encoders import _backends

from .conftest import random_images

OPENVINO = _backends.is_installed("openvino")
needs_openvino = pytest.mark.skipif(not OPENVINO, reason="openvino is not installed")
BF16_OPENVINO = OPENVINO and "bf16" in _device.cpu_low_precision_support("openvino")
BF16_TORCH = "bf16" in _device.cpu_low_precision_support("torch")


@pytest.fixture
def compile_configs(monkeypatch):
    """The configuration of every OpenVINO compile in the test, in order."""
    import openvino

    configs = []
    original = openvino.Core.compile_model

    def recording(self, model, device_name=None, config=None, **kwargs):
        configs.append(dict(config or {}))
        return original(self, model, device_name, config, **kwargs)

    monkeypatch.setattr(openvino.Core, "compile_model", recording)
    clear_model_registry()  # compile again, here
    yield configs
    clear_model_registry()


def _cosines(a, b):
    return (a * b).sum(axis=1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


@needs_openvino
@pytest.mark.real_model
def test_the_default_encoders_ask_openvino_for_fp32_and_it_runs_fp32(compile_configs, photos):
    image = ImageEncoder(device="cpu", cache=None).fit(photos[:1])  # backend="auto": OpenVINO for images
    text = TextEncoder(device="cpu", cache=None, backend="openvino").fit(["a text"])
    assert [config["INFERENCE_PRECISION_HINT"] for config in compile_configs] == ["f32", "f32"]
    for encoder in (image, text):
        compiled = encoder.load_backbone().inference_module if encoder is image else encoder.load_backbone().compiled
        assert isinstance(compiled, _backends.CompiledModel)
        assert compiled.inference_precision == "f32"  # what the runtime reports, read back
        assert encoder.precision_ == "fp32"
    # ... and on a CPU whose OpenVINO would default to bf16 they still agree with torch to fp32 rounding.
    reference = ImageEncoder(device="cpu", cache=None, backend="torch").fit(photos).transform(photos)
    assert _cosines(image.transform(photos), reference).min() >= 0.9999


def test_auto_is_fp32_on_every_cpu(monkeypatch):
    cpu = torch.device("cpu")
    for supported in (set(), {"bf16"}, {"bf16", "fp16"}):
        monkeypatch.setattr(_device, "cpu_low_precision_support", lambda backend="torch", s=supported: s)
        for backend in ("torch", "openvino", "onnxruntime"):
            assert _device.resolve_precision("auto", cpu, backend) == "fp32"
            assert _device.resolve_precision("fp32", cpu, backend) == "fp32"


def test_bf16_on_a_cpu_without_it_warns_once_and_runs_fp32(monkeypatch, tiny_image_params):
    monkeypatch.setattr(_device, "cpu_low_precision_support", lambda backend="torch": set())
    params = {**tiny_image_params, "device": "cpu", "backend": "torch", "cache": None}
    with pytest.warns(RuntimeWarning, match="no bf16 instructions.*running in fp32") as record:
        encoder = ImageEncoder(**params, precision="bf16").fit(random_images(1))
    assert len([w for w in record if "bf16" in str(w.message)]) == 1
    assert encoder.precision_ == "fp32"
    fp32 = ImageEncoder(**params, precision="fp32").fit(random_images(1))
    assert encoder.fingerprint_ == fp32.fingerprint_  # the same computation, the same cache entries
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # embedding does not warn again
        np.testing.assert_array_equal(encoder.transform(random_images(3)), fp32.transform(random_images(3)))


def test_onnxruntime_has_no_reduced_precision_and_says_so(tiny_image_params):
    if not _backends.is_installed("onnxruntime"):
        pytest.skip("onnxruntime is not installed")
    encoder = ImageEncoder(**{**tiny_image_params, "device": "cpu"}, backend="onnxruntime", precision="bf16")
    with pytest.raises(ValueError, match="ONNX Runtime computes fp32"):
        encoder.fit(random_images(1))


@pytest.mark.skipif(not BF16_OPENVINO, reason="this CPU has no bf16 instructions for OpenVINO")
def test_openvino_bf16_is_keyed_apart_and_never_reads_fp32_entries(compile_configs, tiny_image_params,
                                                                    embedded_items):
    params = {**tiny_image_params, "device": "cpu", "backend": "openvino", "cache": "memory"}
    images = random_images(6, size=48, seed=3)
    fp32 = ImageEncoder(**params).fit(images[:1])
    reference = fp32.transform(images)
    assert len(embedded_items) == 6
    bf16 = ImageEncoder(**params, precision="bf16").fit(images[:1])
    assert compile_configs[-1]["INFERENCE_PRECISION_HINT"] == "bf16"
    assert bf16.load_backbone().inference_module.inference_precision == "bf16"
    assert bf16.precision_ == "bf16" and bf16.fingerprint_ != fp32.fingerprint_
    reduced = bf16.transform(images)
    assert len(embedded_items) == 12  # every item computed again in bf16, none served from the fp32 entries
    assert not np.array_equal(reduced, reference)  # really bf16...
    assert _cosines(reduced, reference).min() > 0.98  # ...and close
    np.testing.assert_array_equal(fp32.transform(images), reference)  # fp32 reads its own entries
    np.testing.assert_array_equal(bf16.transform(images), reduced)
    assert len(embedded_items) == 12


@pytest.mark.skipif(not BF16_TORCH, reason="this CPU has no bf16 instructions")
def test_torch_bf16_autocast_on_the_cpu_is_keyed_apart(tiny_text_params):
    params = {**tiny_text_params, "device": "cpu", "backend": "torch", "cache": None}
    texts = ["fire city", "a photo of a kitten", "word " * 30]
    fp32 = TextEncoder(**params).fit(texts)
    bf16 = TextEncoder(**params, precision="bf16").fit(texts)
    assert bf16.precision_ == "bf16" and bf16.fingerprint_ != fp32.fingerprint_
    a, b = fp32.transform(texts), bf16.transform(texts)
    assert not np.array_equal(a, b) and _cosines(a, b).min() > 0.98


@pytest.mark.real_model
def test_a_process_wide_fp32_matmul_setting_does_not_change_embeddings():
    """``torch.set_float32_matmul_precision("medium")`` lets oneDNN compute MiniLM's fp32 products in bf16 on
    a CPU that has it (a user may set it for training); the encoders pin IEEE fp32 while they embed."""
    params = {"device": "cpu", "backend": "torch", "cache": None}
    texts = [f"text number {i}: " + "a rather long sentence about cats and dogs " * 4 for i in range(16)]
    reference = TextEncoder(**params).fit(texts).transform(texts)
    before = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("medium")
    try:
        np.testing.assert_array_equal(TextEncoder(**params).fit(texts).transform(texts), reference)
        assert torch.get_float32_matmul_precision() == "medium"  # the setting is the user's again afterwards
    finally:
        torch.set_float32_matmul_precision(before)


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    from skmm.datasets import make_multimodal_classification

    X, _ = make_multimodal_classification(n_samples=6, image_size=96, image_format="path",
                                          image_dir=tmp_path_factory.mktemp("photos"), random_state=0)
    return list(X["image"])
