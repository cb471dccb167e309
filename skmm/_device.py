"""Device and precision selection shared by every encoder and estimator."""

from __future__ import annotations

import contextlib
import functools
import platform
import warnings

import torch

from ._messages import caller_stacklevel

PRECISIONS = ("auto", "fp32", "fp16", "bf16")


def resolve_device(device="auto", *, fallback=False):
    """Turn a user's ``device`` parameter into a :class:`torch.device`.

    ``"auto"`` picks CUDA, then Apple MPS, then the CPU. An explicit device that
    this machine does not have raises, unless ``fallback`` is true: then it
    warns and uses the CPU (used when a model fitted on a GPU is unpickled on a
    CPU-only machine).
    """
    if isinstance(device, torch.device):
        device = str(device)
    if device is None or device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if not isinstance(device, str):
        raise TypeError(f"device must be 'auto', a string or a torch.device, got {device!r}")
    resolved = torch.device(device)
    available = {
        "cpu": True,
        "cuda": torch.cuda.is_available(),
        "mps": getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available(),
    }.get(resolved.type, False)
    if not available:
        if fallback:
            warnings.warn(
                f"device {device!r} is not available on this machine; using the CPU instead.",
                RuntimeWarning,
                stacklevel=caller_stacklevel(),
            )
            return torch.device("cpu")
        raise ValueError(f"device {device!r} is not available on this machine (use device='auto').")
    return resolved


_DTYPES = {"fp32": None, "fp16": torch.float16, "bf16": torch.bfloat16}
# What each backend's runtime is asked for, by name (OpenVINO's INFERENCE_PRECISION_HINT values).
RUNTIME_PRECISION = {"fp32": "f32", "fp16": "f16", "bf16": "bf16"}


@functools.lru_cache(maxsize=1)
def _openvino_capabilities():
    import openvino

    return frozenset(openvino.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"))


def cpu_low_precision_support(backend="torch"):
    """The reduced precisions this CPU runs natively for ``backend``: a subset of ``{"bf16", "fp16"}``.

    Native means instructions for them (x86 AVX512-BF16 or AMX, ARM BF16 / FP16
    as oneDNN and OpenVINO detect them). Elsewhere a runtime either emulates
    them, slower than fp32, or silently computes fp32: skmm then runs fp32.
    """
    if backend == "openvino":
        capabilities = _openvino_capabilities()
        return {name for name, flag in (("bf16", "BF16"), ("fp16", "FP16")) if flag in capabilities}
    if backend != "torch":
        return set()  # ONNX Runtime's CPU provider computes fp32
    supported = set()
    if platform.machine().lower() in ("x86_64", "amd64", "i386", "i686"):
        probes = {"bf16": ("_is_avx512_bf16_supported", "_is_amx_tile_supported"), "fp16": ("_is_amx_fp16_supported",)}
        for name, functions in probes.items():
            if any(getattr(torch.cpu, function, lambda: False)() for function in functions):
                supported.add(name)
    else:  # ARM and others: what oneDNN itself reports
        checks = {"bf16": "_is_mkldnn_bf16_supported", "fp16": "_is_mkldnn_fp16_supported"}
        for name, check in checks.items():
            try:
                if getattr(torch.ops.mkldnn, check)():
                    supported.add(name)
            except (AttributeError, RuntimeError):
                pass
    return supported


def resolve_precision(precision, device, backend="torch", *, warn=False):
    """The precision the model runs in: ``"fp32"``, ``"bf16"`` or ``"fp16"``, decided here, never by a runtime.

    ``"auto"`` is bf16 (fp16 where bf16 is missing) on CUDA, fp16 on MPS and
    fp32 on a CPU, whatever the CPU: the same model gives the same embeddings
    on every CPU. On a CPU, ``"bf16"`` / ``"fp16"`` are an opt-in speed mode
    where the CPU runs them natively for ``backend`` (see
    :func:`cpu_low_precision_support`); elsewhere fp32 runs instead, with a
    one-line warning when ``warn``. ONNX Runtime computes fp32 only: asking it
    for less is an error.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {list(PRECISIONS)}, got {precision!r}")
    device = torch.device(device)
    if precision == "auto":
        if device.type == "cuda":
            return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        return "fp16" if device.type == "mps" else "fp32"
    if precision == "fp32" or device.type != "cpu":
        return precision
    if backend == "onnxruntime":
        raise ValueError(f"precision={precision!r}: ONNX Runtime computes fp32 on the CPU; use backend='openvino' "
                         "or 'torch' for a reduced precision, or precision='fp32'")
    if precision not in cpu_low_precision_support(backend):
        if warn:
            warnings.warn(f"precision={precision!r}: this CPU has no {precision} instructions for {backend}; "
                          "running in fp32 (the same embeddings as precision='fp32').", RuntimeWarning, stacklevel=caller_stacklevel())
        return "fp32"
    return precision


def autocast_dtype(precision_name):
    """The torch autocast dtype for a resolved precision name (None for fp32)."""
    return _DTYPES[precision_name]


def _pinned_fp32_math():
    """CPU fp32 math as IEEE fp32 inside the block, whatever the process set.

    ``torch.set_float32_matmul_precision("medium")`` (or oneDNN's own
    ``fp32_precision`` flags), set by a user for training, lets oneDNN compute
    fp32 matrix products in bf16 on CPUs that have it: embeddings would then
    depend on the CPU and on the caller's settings.
    """
    backends = [getattr(torch.backends.mkldnn, op, None) for op in ("matmul", "conv", "rnn")]
    backends = [b for b in backends if b is not None and hasattr(b, "fp32_precision")]
    if not backends:
        return contextlib.nullcontext()

    @contextlib.contextmanager
    def pinned():
        saved = [b.fp32_precision for b in backends]
        for b in backends:
            b.fp32_precision = "ieee"
        try:
            yield
        finally:
            for b, value in zip(backends, saved):
                b.fp32_precision = value

    return pinned()


def autocast(device, dtype):
    """Autocast context for ``dtype`` on ``device``; for fp32 on a CPU, IEEE fp32 math pinned."""
    if dtype is None:
        return _pinned_fp32_math() if device.type == "cpu" else contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)
