"""The modality blocks of a table: columns read, presence masks, scaling, and combining them in one space."""

from __future__ import annotations

import numpy as np
from scipy import sparse
from sklearn.base import clone

from .._inputs import row_name
from .._messages import first_and_more
from .._table import present_mask, reject_rows_without_a_modality
from ..encoders import EncodingError


def dense(Z):
    Z = Z.toarray() if sparse.issparse(Z) else np.asarray(Z)
    return Z.astype(np.float32)


def expand(block, mask):
    """A block of the present rows as a full-height block, zeros where the modality is absent."""
    full = np.zeros((len(mask), block.shape[1]), dtype=np.float32)
    full[mask] = block
    return full


def read_modalities(frame, triples, fitting):
    """Each modality's column(s) of ``frame`` and where it has a value; rows with none are refused here,
    before any encoding."""
    if len(frame) == 0:
        raise ValueError("X is empty: at least one row is required")
    columns, masks = [], []
    for name, _, column in triples:
        wanted = column if isinstance(column, list) else [column]
        absent = [c for c in wanted if c not in frame.columns]
        if absent:
            raise ValueError(f"modality {name!r} reads column(s) {absent}, which X does not have "
                             f"(columns: {list(frame.columns)})")
        columns.append(frame[column])
        masks.append(present_mask(columns[-1]))
        if fitting and not masks[-1].any():
            raise ValueError(f"modality {name!r} (column {column!r}) has no value in any row")
    reject_rows_without_a_modality(masks, frame.index, [column for _, _, column in triples])
    return columns, masks


def encode_modalities(triples, columns, masks, fitting, y=None):
    """Each modality's transformer (a clone, fitted, when ``fitting``) run on its present rows.

    Returns the dense float32 blocks, the masks (an item that a tolerant skmm
    encoder could not read is then absent too) and the transformers used.
    """
    blocks, used = [], []
    for m, ((name, transformer, column), values, mask) in enumerate(zip(triples, columns, masks)):
        try:
            if fitting:
                transformer = clone(transformer)
                y_present = None if y is None else np.asarray(y)[mask]
                block = _fit_encode(transformer, values[mask], y_present)
            else:
                block = _encode_present(transformer, values[mask]) if mask.any() else np.zeros((0, 0))
        except (ValueError, TypeError) as error:
            raise _naming_the_modality(error, name, column) from error
        if isinstance(block, tuple):  # an skmm encoder that keeps going: its failed items count as missing
            block, failed = block
            masks[m] = mask.copy()
            masks[m][np.flatnonzero(mask)[failed]] = False
            block = block[~failed]
            if fitting and not masks[m].any():
                raise ValueError(f"modality {name!r} (column {column!r}) has no value that could be read in any "
                                 "row (for image paths: are they relative to the working directory, or to root=?)")
        blocks.append(dense(block))
        _check_finite(blocks[-1], name, column, transformer, values.index[masks[m]])
        used.append((name, transformer, column))
    return blocks, masks, used


def _naming_the_modality(error, name, column):
    """``error`` (a transformer's own) with the modality and its column(s) in front; skmm's errors name them."""
    if isinstance(error, EncodingError):
        return error
    hint = ""
    if isinstance(column, str) and ("2-dimensional" in str(error) or "2D array" in str(error)):
        hint = (f" A transformer that needs a table (a scikit-learn scaler, encoder or imputer) reads a list of "
                f"columns: ({name!r}, transformer, [{column!r}]).")
    try:
        return type(error)(f"modality {name!r} (column {column!r}): {error}{hint}")
    except Exception:  # an exception type whose constructor takes something else: keep it, with a note
        error.add_note(f"raised by the transformer of modality {name!r} (column {column!r}){hint}")
        return error


def _check_finite(block, name, column, transformer, index):
    """A block with NaN or infinite values names its modality, column(s) and rows, and what to do."""
    if block.size == 0 or np.isfinite(block).all():
        return
    rows = np.flatnonzero(~np.isfinite(block).all(axis=1))
    raise ValueError(
        f"modality {name!r} (column {column!r}): {type(transformer).__name__} gave NaN or infinite values for "
        f"{len(rows)} row(s) ({first_and_more(rows, lambda p: row_name(index, p), separator=', ')}). Missing "
        "values inside a modality must be imputed: skmm.encoders.TabularEncoder does for numbers and "
        "categories (or put a sklearn.impute.SimpleImputer first in the branch's pipeline); a row whose "
        "modality is missing altogether (None / NaN in its column) is handled as a missing modality.")


def _tolerant(transformer):
    """An skmm encoder whose ``on_error`` keeps going: ``encode`` says which items failed."""
    return hasattr(transformer, "encode") and getattr(transformer, "on_error", "raise") != "raise"


def _fit_encode(transformer, values, y):
    if _tolerant(transformer):
        return transformer.fit(values, y).encode(values)
    return transformer.fit_transform(values, y)


def _encode_present(transformer, values):
    return transformer.encode(values) if _tolerant(transformer) else transformer.transform(values)


# A block of at least this many columns is scaled to unit total spread; a narrower one to sqrt(width / this), so
# that each of its columns weighs like one column of a block this wide. An embedding's variance lies in a few dozen
# directions: scaled whole to the same spread, a 3-column block got several times the weight of each of those per
# column, and a linear model fitted noise in it (measured in docs/user_guide.md, "Numbers and categories").
FULL_WEIGHT_WIDTH = 64


def block_spread(block, widest):
    """A block's training mean, and the divisor that brings it to its total spread.

    The spread is the rows' root mean squared distance to the mean (1 where
    there is none); the divisor brings it to 1 for a block at least as wide as
    the reference, ``min(widest, FULL_WEIGHT_WIDTH)`` (``widest``: the widest
    block of the fusion), to ``sqrt(width / reference)`` for a narrower one.
    A lone block, or blocks all narrower than :data:`FULL_WEIGHT_WIDTH`, are
    weighed against each other, not against a width none of them has.
    """
    mean = block.mean(axis=0)
    spread = float(np.sqrt(((block - mean) ** 2).sum(axis=1).mean()))
    reference = min(widest, FULL_WEIGHT_WIDTH)
    target = min(1.0, float(np.sqrt(block.shape[1] / reference)))
    return mean, (spread if spread > 1e-12 else 1.0) / target


def check_weights(weights, names):
    """User-given modality weights (a dict by name, or one per modality in order) as an array."""
    if isinstance(weights, dict):
        unknown = set(weights) - set(names)
        if unknown:
            raise ValueError(f"weights name unknown modalities {sorted(unknown)}; modalities are {names}")
        values = np.array([weights.get(name, 1.0) for name in names], dtype=float)
    else:
        values = np.asarray(weights, dtype=float)
        if values.shape != (len(names),):
            raise ValueError(f"weights must have one value per modality ({len(names)}), got {weights!r}")
    if np.any(values < 0) or not np.any(values > 0) or not np.all(np.isfinite(values)):
        raise ValueError(f"weights must be finite, non-negative and not all zero, got {weights!r}")
    return values


def weighted_mean(space, masks, weights):
    """Per row, the weighted mean of the common-space blocks over the modalities present (weights renormalised)."""
    row_weights = np.column_stack(masks) * np.asarray(weights, dtype=np.float64)
    total = row_weights.sum(axis=1, keepdims=True)
    row_weights = np.divide(row_weights, total, out=np.zeros_like(row_weights), where=total > 0)
    return sum(row_weights[:, [m]] * block for m, block in enumerate(space)).astype(np.float32)


def check_target_given(method, weights, alignment, y):
    """Before any encoding: what the fusion learns from ``y`` needs ``y``."""
    if y is not None or method == "concat":
        return
    if method == "gated":
        raise ValueError("method='gated' learns its gate from the target: fit needs y")
    if method == "weighted" and weights is None:
        raise ValueError("method='weighted' without weights learns them from the target: fit needs y "
                         "(or pass weights={modality: weight, ...})")
    if alignment == "supervised":
        raise ValueError("alignment='supervised' learns the common space from the target: fit needs y "
                         "(or use alignment='cca' / 'pca')")


def concatenate(blocks, masks, widths, fill_values, indicator):
    """The blocks side by side, full height: a missing modality's rows hold its fill values; with
    ``indicator``, a presence column per modality after them."""
    parts = []
    for block, mask, width, fill in zip(blocks, masks, widths, fill_values):
        full = np.empty((len(mask), width), dtype=np.float32)
        full[~mask] = fill
        if mask.any():
            full[mask] = block
        parts.append(full)
    if indicator:
        parts.append(np.column_stack(masks).astype(np.float32))
    return np.hstack(parts)
