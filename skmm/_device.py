"""Device and precision selection shared by every encoder and estimator."""

from __future__ import annotations

import contextlib
import warnings

import torch

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
                stacklevel=3,
            )
            return torch.device("cpu")
        raise ValueError(f"device {device!r} is not available on this machine (use device='auto').")
    return resolved


def resolve_precision(precision, device):
    """Return the autocast dtype for ``precision`` on ``device`` (None means fp32)."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {list(PRECISIONS)}, got {precision!r}")
    if precision == "fp32":
        return None
    if precision == "auto":
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        if device.type == "mps":
            return torch.float16
        return None  # CPU autocast is slower than fp32 on most CPUs and changes results.
    return torch.float16 if precision == "fp16" else torch.bfloat16


def autocast(device, dtype):
    """Autocast context for ``dtype`` on ``device``; a no-op for fp32."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)
