"""How skmm's messages list what went wrong where, in one wording wherever they are made.

Low layer: the standard library only, so that the encoders, the fusion, the
estimators and the command line can all share it.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path


def first_and_more(items, describe=str, *, limit=10, separator="; "):
    """The first ``limit`` of ``items``, described and joined, then how many were left out.

    A message that names a million failed rows stays one readable line:
    only the first few are described (``describe`` is never called on the
    others), and the rest are counted.

    Parameters
    ----------
    items : sequence
        What the message names, in the order to show it (a list, an
        ndarray, a pandas Index...): anything with ``len`` and slicing.
    describe : callable, default=str
        ``item -> str``: how one item reads in the message.
    limit : int, default=10
        How many items are described.
    separator : str, default="; "
        What goes between two described items, and before ``and N more``.

    Returns
    -------
    text : str
        ``"a; b; c"``, or ``"a; b; and 3 more"`` when items were left out.

    Examples
    --------
    >>> from skmm._messages import first_and_more
    >>> first_and_more(["a", "b", "c", "d", "e"], limit=2)
    'a; b; and 3 more'
    >>> first_and_more([5, 9], lambda line: f"line {line}", separator=", ")
    'line 5, line 9'
    """
    shown = separator.join(describe(item) for item in items[:limit])
    left_out = len(items) - limit
    return shown + (f"{separator}and {left_out} more" if left_out > 0 else "")


# skmm's own folder: frames in it are skmm's, never the user's.
_LIBRARY_FOLDERS = tuple({os.path.dirname(os.path.abspath(__file__)) + os.sep, str(Path(__file__).resolve().parent) + os.sep})


def caller_stacklevel():
    """The ``stacklevel`` that makes the ``warnings.warn`` of the calling function name the user's line.

    The first frame outside skmm and the libraries it is called through
    (scikit-learn's wrappers, joblib), however deep inside skmm the warning is
    raised: counted, not hard-coded, so that it stays right when the code
    around it moves.

    Returns
    -------
    stacklevel : int

    Examples
    --------
    >>> import warnings
    >>> from skmm._messages import caller_stacklevel
    >>> def noisy():
    ...     warnings.warn("careful", stacklevel=caller_stacklevel())
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     noisy()
    >>> caught[0].filename == noisy.__code__.co_filename
    True
    """
    frame, level = sys._getframe(1), 1
    while frame.f_back is not None and _is_library(frame.f_code.co_filename):
        frame, level = frame.f_back, level + 1
    return level


def _is_library(filename):
    return filename.startswith(_LIBRARY_FOLDERS) or any(
        f"{os.sep}{name}{os.sep}" in filename for name in ("sklearn", "joblib"))
