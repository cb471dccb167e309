"""Turning messy user inputs (paths, bytes, PIL images, arrays, odd text) into model inputs."""

from __future__ import annotations

import io
import math
import os
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageOps


def as_item_list(X, *, input_name="X"):
    """Return the items of a one-column input as a list, with their row labels.

    Accepts a list or tuple, a 1-D (object) ndarray, a 4-D uint8 image stack
    (N, H, W, C), a pandas Series or a one-column DataFrame. Returns
    ``(items, index, column_name)``; ``index`` is the pandas index (or a range)
    so that error messages can name the row the user knows.
    """
    column = None
    if isinstance(X, pd.DataFrame):
        if X.shape[1] != 1:
            raise ValueError(
                f"{input_name} must have exactly one column, got {X.shape[1]} columns "
                f"{list(X.columns)[:5]}; use skmm.ModalityFusion to encode several columns."
            )
        column = X.columns[0]
        index = X.index
        items = X.iloc[:, 0].tolist()
    elif isinstance(X, pd.Series):
        column, index, items = X.name, X.index, X.tolist()
    elif isinstance(X, np.ndarray):
        if X.ndim == 4 or (X.ndim == 3 and X.dtype != object):
            items = list(X)  # a stack of images
        elif X.ndim == 2 and X.shape[1] == 1:
            items = X[:, 0].tolist()
        elif X.ndim == 1:
            items = X.tolist()
        else:
            raise ValueError(
                f"{input_name} must be one column of items, got an array of shape {X.shape}."
            )
        index = pd.RangeIndex(len(items))
    elif isinstance(X, (list, tuple)):
        items = list(X)
        index = pd.RangeIndex(len(items))
    elif isinstance(X, (str, bytes, Path)):
        raise TypeError(
            f"{input_name} must be a sequence of items, got a single {type(X).__name__}; wrap it in a list."
        )
    else:
        try:
            items = list(X)
        except TypeError:
            raise TypeError(
                f"{input_name} must be a list, array, pandas Series or one-column DataFrame, "
                f"got {type(X).__name__}."
            ) from None
        index = pd.RangeIndex(len(items))
    if len(items) == 0:
        raise ValueError(f"{input_name} is empty: at least one sample is required.")
    return items, index, column


def is_missing(item):
    """True for None, float NaN (what pandas puts in an empty cell), ``pd.NA``, ``pd.NaT``, and a string that
    is empty or whitespace only.

    A blank string is missing because it holds nothing to embed or open: a
    field of spaces, or an empty string read from Parquet, is the same absent
    value as an empty CSV field (which pandas reads as NaN), in the encoders,
    the fusion and the command line alike.
    """
    if item is None:
        return True
    if isinstance(item, str):
        return not item or item.isspace()  # isspace: no copy of a long text, stops at its first letter
    if isinstance(item, float) and math.isnan(item):
        return True
    return item is pd.NA or item is pd.NaT


def row_label(label):
    """A row label as the user wrote it: 11, not np.int64(11)."""
    label = label.item() if isinstance(label, np.generic) else label
    return repr(label) if isinstance(label, str) else str(label)


def row_name(index, position):
    """How messages name the row at ``position``: by the index's name when it has one ("line 12",
    "guid '4021'"), else "row <label>"."""
    name = index.name if isinstance(getattr(index, "name", None), str) else "row"
    return f"{name} {row_label(index[position])}"


def open_image(item, *, draft_size=None):
    """Open one image item as an RGB :class:`PIL.Image.Image`.

    ``item`` may be a path (str or Path), raw encoded bytes, a PIL image or an
    HWC / HW uint8 array. Any Pillow mode becomes RGB (transparency is composited
    on white, CMYK converted, 16-bit scaled) and EXIF orientation is applied.
    ``draft_size`` lets the JPEG decoder decode at a reduced scale when the file
    is much larger than needed (visually identical after the resize that
    follows; docs/performance.md says what it saves).
    """
    if isinstance(item, (str, os.PathLike)):
        image = Image.open(item)
    elif isinstance(item, (bytes, bytearray, memoryview)):
        image = Image.open(io.BytesIO(bytes(item)))
    elif isinstance(item, Image.Image):
        image = item
    elif isinstance(item, np.ndarray):
        image = _array_to_image(item)
    else:
        raise TypeError(
            f"an image must be a file path, bytes, a PIL image or a uint8 array, got {type(item).__name__}"
        )
    if draft_size is not None and image.format == "JPEG":
        image.draft("RGB", (draft_size, draft_size))
    image = ImageOps.exif_transpose(image)
    return to_rgb(image)


def _array_to_image(array):
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (3, 4)):
        raise ValueError(f"an image array must be HxW, HxWx3 or HxWx4, got shape {array.shape}")
    if array.dtype != np.uint8:
        if np.issubdtype(array.dtype, np.floating) and np.nanmax(array) <= 1.0:
            array = array * 255.0
        array = np.clip(np.nan_to_num(array), 0, 255).astype(np.uint8)
    return Image.fromarray(np.ascontiguousarray(array))


def to_rgb(image):
    """Convert any Pillow mode to RGB, compositing transparency on white."""
    if image.mode == "RGB":
        return image
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        array = np.asarray(image, dtype=np.float64)
        peak = array.max() if array.size else 0
        scale = 255.0 / peak if peak > 255 else 1.0
        image = Image.fromarray(np.clip(array * scale, 0, 255).astype(np.uint8), mode="L")
    elif image.mode == "F":
        image = Image.fromarray(np.clip(np.asarray(image), 0, 255).astype(np.uint8), mode="L")
    if image.mode == "P" or image.mode == "PA" or "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "La", "RGBa"):
        image = image.convert("RGBA")
        background = Image.new("RGBA", image.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, image)
    return image.convert("RGB")


def to_text(item):
    """Coerce one text item to ``str``: bytes are decoded as UTF-8 with replacement."""
    if isinstance(item, str):
        return item
    if isinstance(item, (bytes, bytearray, memoryview)):
        return bytes(item).decode("utf-8", errors="replace")
    if isinstance(item, (int, float, np.integer, np.floating)) and not is_missing(item):
        return str(item)
    raise TypeError(f"a text must be str or bytes, got {type(item).__name__}")
