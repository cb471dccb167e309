"""Compiled CPU inference for the encoders' frozen models: OpenVINO and ONNX Runtime.

The torch model (batch norms folded, for images) is exported once to ONNX,
with a dynamic batch (and, for texts, sequence) axis, and kept on disk: next
to the embedding cache when that is a folder, else in ``$SKMM_EXPORT_DIR`` or
the user's cache folder. The file name is a hash of everything the graph
depends on (model, weights, input size, torch and skmm export versions); a
checksum beside it catches a torn or corrupted file, which is then exported
again. A clone, a second process or a later run loads the file instead of
exporting. OpenVINO and ONNX Runtime both read the ONNX file directly.

``backend="auto"`` picks what measured fastest on a CPU (the figures are in
docs/performance.md): OpenVINO for images when it is installed (it is by
default), else torch; torch for texts; torch on a GPU. ONNX Runtime runs only
when asked for. The precision
is always skmm's decision, passed to the runtime and read back from the
compiled model (:class:`CompiledModel`).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import os
import threading
import warnings
from pathlib import Path

import joblib
import numpy as np
import torch

from .._device import RUNTIME_PRECISION
from .._files import atomic_write, atomic_write_bytes

BACKENDS = ("auto", "torch", "openvino", "onnxruntime")
# What measured fastest on a CPU (docs/performance.md), in fp32 and in bf16 alike.
_AUTO_ORDER = {"image": ("openvino",), "text": ()}
_DISTRIBUTIONS = {"openvino": "openvino", "onnxruntime": "onnxruntime"}
_INSTALL = {"openvino": "pip install openvino (skmm installs it; was it removed?)",
            "onnxruntime": "pip install 'skmm[onnx]'"}
# Bump when a change to the export (wrapper, opset, axes) makes old files unusable.
_EXPORT_VERSION = 1
_OPSET = 17
exports_made = 0  # in this process (tests count them)


def is_installed(backend):
    return backend == "torch" or importlib.util.find_spec(backend) is not None


def resolve_backend(backend, device, modality="image"):
    """The backend that runs: ``"auto"`` resolved for ``device`` and the modality; a missing one is a clear error."""
    device = torch.device(device)
    if backend == "torch":
        return "torch"
    if backend == "auto":
        if device.type != "cpu":
            return "torch"
        return next((name for name in _AUTO_ORDER[modality] if is_installed(name)), "torch")
    if device.type != "cpu":
        raise ValueError(f"backend={backend!r} runs on the CPU; on {device} use backend='torch' (or 'auto')")
    if not is_installed(backend):
        raise ImportError(f"backend={backend!r} needs the {_DISTRIBUTIONS[backend]!r} package, which is not "
                          f"installed: {_INSTALL[backend]} (or use backend='auto' or 'torch')")
    return backend


def backend_version(backend):
    return "torch-" + torch.__version__ if backend == "torch" else (
        f"{backend}-{importlib.metadata.version(_DISTRIBUTIONS[backend])}")


def export_folder(cache):
    """Where exported models live: beside the disk embedding cache, else ``$SKMM_EXPORT_DIR`` or the user cache."""
    from .._cache import resolve_cache

    resolved = resolve_cache(cache)
    disk = getattr(resolved, "disk", None)
    if disk is not None:
        return Path(disk.directory) / "exports"
    if os.environ.get("SKMM_EXPORT_DIR"):
        return Path(os.environ["SKMM_EXPORT_DIR"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "skmm" / "exports"


def _digest(path):
    digest = hashlib.blake2b()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _valid(path):
    checksum = path.with_name(path.name + ".blake2b")
    try:
        return checksum.read_text().strip() == _digest(path)
    except OSError:
        return False


def export_onnx(key, folder, make, input_names):
    """The ONNX file for ``key``, exported by ``make()`` only when no valid one is on disk.

    ``make()`` returns ``(module, example_inputs, dynamic_axes)``; the inputs are named ``input_names``.
    The file is written under a temporary name and renamed into place, its
    checksum beside it; a file whose checksum does not match is exported again.
    """
    folder = Path(folder)
    path = folder / f"{joblib.hash(dict(key, export_version=_EXPORT_VERSION, opset=_OPSET))}.onnx"
    if path.exists() and _valid(path):
        return path
    folder.mkdir(parents=True, exist_ok=True)
    module, inputs, axes = make()

    def export(tmp):
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # the exporter's deprecation and tracer notes are not the user's
            torch.onnx.export(module, inputs, tmp, input_names=list(input_names), output_names=["embedding"],
                              dynamic_axes={**axes, "embedding": {0: "batch"}}, opset_version=_OPSET, dynamo=False)

    atomic_write(path, export)
    atomic_write_bytes(path.with_name(path.name + ".blake2b"), _digest(path).encode())
    global exports_made
    exports_made += 1
    return path


class CompiledModel:
    """An exported model run by OpenVINO or ONNX Runtime on the CPU; torch tensors in, a torch tensor out.

    ``precision`` (``"fp32"``, ``"bf16"``, ``"fp16"``; resolved by
    :func:`skmm._device.resolve_precision`) is always passed to the runtime,
    never left to its CPU-dependent default (OpenVINO runs bf16 on a CPU with
    bf16 instructions, f16 on ARM, unless told), and read back from the
    compiled model: ``inference_precision`` is what the runtime reports.
    """

    def __init__(self, backend, path, input_names, threads=None, precision="fp32"):
        self.backend = backend
        self.input_names = list(input_names)
        self.precision = precision
        threads = int(threads or torch.get_num_threads())
        if backend == "openvino":
            import openvino

            # No pinning: OpenVINO pins its threads to the first cores, so two processes (a search's n_jobs,
            # Dask workers) would share one core while the other idles.
            # Dynamic quantization (int8 activations) is OpenVINO's default for compressed weights only; off
            # here in so many words, so that no version's default can decide.
            self.config = {"INFERENCE_NUM_THREADS": threads, "ENABLE_CPU_PINNING": False,
                           "INFERENCE_PRECISION_HINT": RUNTIME_PRECISION[precision],
                           "DYNAMIC_QUANTIZATION_GROUP_SIZE": 0}
            self._model = openvino.Core().compile_model(str(path), "CPU", self.config)
            self.inference_precision = self._model.get_property("INFERENCE_PRECISION_HINT").get_type_name()
            self._lock = threading.Lock()
        else:
            import onnxruntime

            if precision != "fp32":
                raise ValueError(f"ONNX Runtime computes fp32 on the CPU, not {precision}")
            options = onnxruntime.SessionOptions()
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
            # Its bf16 fast-math GEMMs on ARM are off by default; said here so no default decides.
            options.add_session_config_entry("mlas.enable_gemm_fastmath_arm64_bfloat16", "0")
            self.config = {"intra_op_num_threads": threads, "mlas.enable_gemm_fastmath_arm64_bfloat16": "0"}
            self._session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
            self.inference_precision = "f32"
        if self.inference_precision != RUNTIME_PRECISION[precision]:
            raise RuntimeError(f"{backend} was asked for {RUNTIME_PRECISION[precision]} inference but reports "
                               f"{self.inference_precision}; its embeddings would not be what the cache key says")

    def __call__(self, *tensors):
        arrays = [np.ascontiguousarray(t.detach().cpu().numpy()) for t in tensors]
        if self.backend == "openvino":
            # One infer request serves the compiled model: threads sharing it (Dask's threaded scheduler, a
            # threaded search) take turns, and each copies its output out before the next call reuses it.
            with self._lock:
                output = np.array(self._model(dict(zip(self.input_names, arrays)))[0], dtype=np.float32)
        else:  # an ONNX Runtime session may be run from several threads at once
            output = self._session.run(None, dict(zip(self.input_names, arrays)))[0]
        return torch.from_numpy(np.asarray(output, dtype=np.float32))
