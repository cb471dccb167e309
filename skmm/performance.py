"""Process-wide speed settings that a library must not apply behind the user's back.

CPU inference of conv nets with glibc's malloc spends about half its time in
the kernel: every batch's large activation buffers are ``mmap``-ed and
``munmap``-ed again, and each fresh page faults. Keeping those buffers in the
heap (``M_MMAP_MAX=0``) and not trimming it back to the OS after each batch
(a high ``M_TRIM_THRESHOLD``) removes that work: conv nets run about twice as
fast on a CPU (docs/performance.md has the figures). Text models gain nothing.

The price is process-wide: freed memory stays with the process (its RSS
stays at the peak it reached) instead of going back to the OS. So skmm never
does this on import or in an estimator; you opt in once per process, in a
script or program you own, with :func:`tune_malloc`, or by setting the
environment variable ``SKMM_TUNE_MALLOC=1`` before importing skmm. The
``skmm`` command line and the demo opt in (they own their process).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_state = {"tuned": False}


def tune_malloc(trim_threshold=1 << 30):
    """Keep large buffers in glibc's heap instead of mmap/munmap per batch.

    Call once, early, in a program you own (before the model first runs).

    Parameters
    ----------
    trim_threshold : int, default=1 GiB
        Free heap memory above this is returned to the OS.

    Returns
    -------
    applied : bool
        False where there is no glibc (macOS, Windows, musl): nothing changes.

    Examples
    --------
    >>> from skmm.performance import tune_malloc
    >>> applied = tune_malloc()  # doctest: +SKIP
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    ok = mallopt(_M_MMAP_MAX, 0) == 1 and mallopt(_M_TRIM_THRESHOLD, int(min(trim_threshold, 2**31 - 1))) == 1
    _state["tuned"] = _state["tuned"] or ok
    return bool(ok)


def malloc_tuned():
    """Whether :func:`tune_malloc` has been applied in this process."""
    return _state["tuned"]


if os.environ.get("SKMM_TUNE_MALLOC", "").strip().lower() in ("1", "true", "yes", "on"):
    tune_malloc()
