"""The stack's members that read a backbone below its output, and the pass that reads it once before they fit."""

from __future__ import annotations

import warnings

from sklearn.base import clone
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from .._cache import resolve_cache
from .._table import present_mask
from ..encoders import IntermediateFeatures, TextEncoder
from ..encoders.trunks import TrunkSplitError

_LAYERS_C_TEXT, _LAYERS_C_IMAGE = 0.003, 0.01


def intermediate_layers_member(encoder, column):
    """An encoder's backbone read below its output (:class:`~skmm.encoders.IntermediateFeatures`), scaled, then
    a strongly regularised LogisticRegression.

    A text model's last four layers (C=0.003: four times its width in
    features), a CNN's blocks a third from the top (C=0.01): what the
    pooled embedding summarises away. On MVSA the pair of them moved the
    stack by 0.7 to 0.8 points (two splits; docs/benchmarks.md), though each
    alone scores below the encoder's own embedding.

    Parameters
    ----------
    encoder : ImageEncoder or TextEncoder
        Cloned; under an ``on_error`` that keeps going, an item it cannot
        read gets zeros here (``"nan"`` would stop the LogisticRegression).
    column : str
        The column it reads.

    Returns
    -------
    member : Pipeline
        Reads ``column`` of a DataFrame, where it has a value (the stack's
        ``"<modality>_layers"`` member wraps it in a
        :class:`~skmm.estimators.PresentRowsClassifier`).
    """
    encoder = clone(encoder)
    if encoder.on_error != "raise":
        encoder.set_params(on_error="zero")
    C = _LAYERS_C_TEXT if isinstance(encoder, TextEncoder) else _LAYERS_C_IMAGE
    layers = ColumnTransformer([("layers", IntermediateFeatures(encoder), column)])
    return Pipeline([("select", layers), ("scale", StandardScaler()), ("clf", LogisticRegression(C=C, max_iter=1000))])


def read_intermediate_layers(members, frame, optional):
    """Run each :class:`~skmm.encoders.IntermediateFeatures` in ``members`` over its column once.

    The cache then serves the members' fits (in threads too), as the stack's
    embedding pass does for the encoders. A backbone that cannot be read
    below its output (an image model that is not a CNN) drops its member
    with a warning when ``optional`` (the ``"auto"`` members), else raises.

    Returns
    -------
    members : list of (str, estimator) tuples
        Those kept.
    """
    kept = []
    for name, member in members:
        try:
            for features, column in _intermediate_features(member):
                if column not in frame.columns:
                    continue  # the member says so when it fits
                cached = resolve_cache(features.encoder.cache) is not None
                # A backbone that cannot be read fails in the fit, cache or not.
                read_present_values(features, frame[column], transform=cached)
        except TrunkSplitError as error:
            if not optional:
                raise
            warnings.warn(f"the stack goes on without member {name!r}: {error}", UserWarning, stacklevel=3)
            continue
        kept.append((name, member))
    return kept


def read_present_values(transformer, values, transform=True):
    """Fit a clone of ``transformer`` on the present ``values`` of a column and (``transform``) read them all: the
    cache then holds each one. An unreadable item raises under ``on_error="raise"``; under ``"zero"`` its
    warning is left to the members, which say so when they read it."""
    present = values[present_mask(values)]
    fitted = clone(transformer).fit(present)
    if transform:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fitted.transform(present)


def _intermediate_features(member):
    """``(IntermediateFeatures, column)`` for each one that a ColumnTransformer in ``member`` holds."""
    if not hasattr(member, "get_params"):
        return []
    return [(transformer, column) for value in [member, *member.get_params(deep=True).values()]
            if isinstance(value, ColumnTransformer)
            for _, transformer, column in value.transformers if isinstance(transformer, IntermediateFeatures)]
