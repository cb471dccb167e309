"""What a target is (class labels, numbers, a multilabel matrix) and its coding as numbers: one rule for the
fusion's alignment and gate and for the torch estimators' target coders (``skmm._targets``)."""

from __future__ import annotations

import numpy as np
from sklearn.preprocessing import LabelBinarizer
from sklearn.utils.multiclass import type_of_target


def target_kind(y, target_type="auto"):
    """``"classes"`` or ``"continuous"`` (or ``"multilabel-indicator"``): sklearn's guess unless told.

    As for :class:`~sklearn.preprocessing.TargetEncoder`, ``"auto"`` follows
    :func:`~sklearn.utils.multiclass.type_of_target`, which takes whole
    numbers (counts, ratings, ages) for classes: say ``"continuous"`` then.
    """
    if target_type == "continuous":
        return "continuous"
    kind = type_of_target(y)
    if target_type == "classes" or kind in ("binary", "multiclass"):
        if kind not in ("binary", "multiclass", "continuous"):
            raise ValueError(f"target_type='classes' needs one column of labels, got a {kind!r} target")
        return "classes"
    if kind in ("continuous", "continuous-multioutput"):
        return "continuous"
    if kind == "multilabel-indicator":
        return kind
    raise ValueError(f"the fusion learns from y, which must be class labels, a multilabel indicator matrix or "
                     f"numeric values; got a {kind!r} target")


def standardization(values):
    """Per column of the 2-D float array ``values``: its mean, and its standard deviation (1 where constant)."""
    scale = values.std(axis=0)
    return values.mean(axis=0), np.where(scale > 0, scale, 1.0)


def target_coding(y, target_type="auto"):
    """The target as a float matrix a ridge regression can fit: one-hot classes, standardised numbers.

    Returns ``(coding, kind)`` with ``coding`` of shape ``(n_samples, n_columns)``.
    """
    kind = target_kind(y, target_type)
    if kind == "classes":
        return LabelBinarizer().fit_transform(np.asarray(y)).astype(np.float64), kind
    if kind == "multilabel-indicator":
        return np.asarray(y, dtype=np.float64), kind
    values = np.asarray(y, dtype=np.float64).reshape(len(y), -1)
    mean, scale = standardization(values)
    return (values - mean) / scale, kind
