"""The modality blocks of a table: columns read, presence masks, scaling, and combining them in one space."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import sparse

from .._inputs import is_missing, row_label


def as_frame(X):
    if isinstance(X, pd.DataFrame):
        return X
    if isinstance(X, dict):
        lengths = {name: len(values) for name, values in X.items()}
        if len(set(lengths.values())) > 1:
            raise ValueError(f"the columns of X have different lengths: {lengths}")
        return pd.DataFrame({name: list(values) for name, values in X.items()})
    if isinstance(X, np.ndarray) and X.ndim == 2:
        return pd.DataFrame(X)
    raise TypeError(f"X must be a pandas DataFrame or a dict of columns, got {type(X).__name__}")


def present_mask(column):
    """Rows where a single-column modality has a value (not None / NaN)."""
    if isinstance(column, pd.DataFrame):
        return np.ones(len(column), dtype=bool)
    return np.fromiter((not is_missing(v) for v in column), dtype=bool, count=len(column))


def dense(Z):
    Z = Z.toarray() if sparse.issparse(Z) else np.asarray(Z)
    return Z.astype(np.float32)


def expand(block, mask):
    """A block of the present rows as a full-height block, zeros where the modality is absent."""
    full = np.zeros((len(mask), block.shape[1]), dtype=np.float32)
    full[mask] = block
    return full


def reject_rows_without_a_modality(masks, index, columns):
    """Raise a ValueError naming the rows where every modality is missing."""
    empty = ~np.logical_or.reduce(masks)
    if not empty.any():
        return
    rows = ", ".join(f"row {row_label(label)}" for label in index[empty][:10])
    more = f" and {int(empty.sum()) - 10} more" if empty.sum() > 10 else ""
    raise ValueError(f"{int(empty.sum())} row(s) have no modality at all ({rows}{more}): every one of columns "
                     f"{columns} is missing there, so there is nothing to predict them from. Drop those rows or "
                     f"fill one of their values.")


def block_spread(block):
    """A block's training mean and its rows' root mean squared distance to it (1 where there is no spread)."""
    mean = block.mean(axis=0)
    spread = float(np.sqrt(((block - mean) ** 2).sum(axis=1).mean()))
    return mean, spread if spread > 1e-12 else 1.0


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
