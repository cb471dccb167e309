"""What a MultimodalNet trains on: each modality's frozen-trunk outputs for the rows of a table, in batches.

A modality is prepared once per fit (``build_top``, then ``run_trunk``): its backbone is
cut where its top blocks start (:mod:`skmm.encoders.trunks`), the trainable top
is copied out, and the trunk is run on every distinct item through the
encoder's own batching and content-keyed cache, so a grid search runs the
trunk once per item however many folds and candidates it fits.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from numbers import Integral

import numpy as np
import torch
from sklearn.utils._param_validation import validate_params
from torch import nn

from ..encoders import ImageEncoder, TextEncoder
from ..encoders.trunks import (ImageSplit, ImageTrunk, PositionBias, TextTrunk, TrunkSplitError, check_text_split,
                               image_probe, text_layers)
from ._net_modules import ImageTop, TextTop


@dataclass
class ModalityData:
    """One modality over the rows of a table: its trunk outputs (view 0, then augmented views) and presence."""

    kind: str
    sequence: bool  # token states of varying length (text), rather than one array shape per row
    present: np.ndarray
    views: list = field(default_factory=list)  # views[v][row] -> array or None

    def batch(self, rows, chosen_views, device):
        """``(x, mask)`` tensors for ``rows``; zeros (and no tokens) where the modality is absent."""
        arrays = [self.views[v][r] if self.present[r] else None for r, v in zip(rows, chosen_views)]
        shown = next((a for a in arrays if a is not None), None)
        if shown is None:
            return None, None
        if not self.sequence:
            x = np.zeros((len(rows), *shown.shape), dtype=np.float32)
            for i, a in enumerate(arrays):
                if a is not None:
                    x[i] = a
            return torch.as_tensor(x, device=device), None
        length = max(len(a) for a in arrays if a is not None)
        x = np.zeros((len(rows), length, shown.shape[1]), dtype=np.float32)
        mask = np.zeros((len(rows), length), dtype=np.int64)
        for i, a in enumerate(arrays):
            if a is not None:
                x[i, :len(a)], mask[i, :len(a)] = a, 1
        return torch.as_tensor(x, device=device), torch.as_tensor(mask, device=device)


def network_reads(transformer, column):
    """Whether the network can train a modality: an ImageEncoder or a TextEncoder of one column (a name or a key)."""
    return isinstance(transformer, (ImageEncoder, TextEncoder)) and isinstance(column, (str, Integral))


@validate_params({"modalities": [list]}, prefer_skip_nested_validation=True)
def network_can_read(modalities):
    """Whether these modalities are of the kinds :class:`~skmm.MultimodalNetClassifier` takes.

    It trains the top blocks of each modality's backbone, so each must be an
    :class:`~skmm.ImageEncoder` or a :class:`~skmm.TextEncoder` (not a
    pipeline, not numbers or categories) reading one column. The network
    checks the rest when it fits (a backbone it can cut into blocks, a text
    model without modules after its pooling).

    Parameters
    ----------
    modalities : list of (str, transformer, str or list of str) tuples

    Returns
    -------
    bool

    Examples
    --------
    >>> from skmm import ImageEncoder, TabularEncoder, TextEncoder
    >>> from skmm.estimators import network_can_read
    >>> network_can_read([("image", ImageEncoder(), "image"), ("text", TextEncoder(), "text")])
    True
    >>> network_can_read([("text", TextEncoder(), "text"), ("price", TabularEncoder(), ["price"])])
    False
    """
    return all(network_reads(transformer, column) for _, transformer, column in modalities)


def _blocks_for(train_blocks, name):
    return train_blocks.get(name, 0) if isinstance(train_blocks, dict) else train_blocks


def build_top(encoder, name, train_blocks, fusion):
    """The trunk (what runs once per item) and the trainable top module for one fitted skmm encoder."""
    bundle = encoder.load_backbone()
    k = _blocks_for(train_blocks, name)
    if isinstance(encoder, ImageEncoder):
        probe = image_probe(encoder, bundle)
        try:
            split = ImageSplit.of(bundle.module, probe, bundle.module)
        except TrunkSplitError as exc:
            if k == 0:
                split = None
            else:
                raise TrunkSplitError(f"modality {name!r}: {encoder.model!r} cannot train top blocks ({exc}); "
                                      "use train_blocks=0 for it") from None
        if split is None:  # only the pooled embedding, as the encoder makes it
            return _PooledTrunk(), ImageTop(nn.Sequential(), encoder.embedding_dim_), False
        start = split.cut(k)
        pooled = start == len(split.names) and fusion != "attention"
        top = split.part(bundle.module, start, len(split.names)).requires_grad_(True)
        depths = [sum(block > unit for block in split.blocks) for unit in range(start, len(split.names))]
        return ImageTrunk(split, start, pooled), ImageTop(top, encoder.embedding_dim_, depths), False
    if isinstance(encoder, TextEncoder):
        st = bundle.module
        extra = [type(m).__name__ for m in list(st)[2:] if type(m).__name__ != "Normalize"]
        probe = dict(st.tokenizer(["a probe text", "a second, longer probe text"], padding=True, return_tensors="pt"))
        probe = {key: value.to(st.device) for key, value in probe.items()}
        layers = check_text_split(st[0].auto_model, probe) if k else text_layers(st[0].auto_model)
        n_layers = len(layers)
        start = 0 if k == "all" else max(0, n_layers - k)
        pooled = start == n_layers and fusion != "attention"
        if not pooled and (extra or type(list(st)[1]).__name__ != "Pooling"):
            # The network would pool the tokens itself and skip those modules.
            raise TrunkSplitError(f"modality {name!r}: {encoder.model!r} has modules after its pooling "
                                  f"({extra}); it cannot be opened here: use train_blocks=0 for it and a fusion "
                                  "other than 'attention'")
        trunk = TextTrunk(start, n_layers, pooled)
        top_layers = nn.ModuleList(copy.deepcopy(layer) for layer in list(layers)[start:]).requires_grad_(True)
        normalize = any(type(m).__name__ == "Normalize" for m in st)
        bias = PositionBias.of(st[0].auto_model, layers) if len(top_layers) else None
        top = TextTop(top_layers, copy.deepcopy(list(st)[1]), normalize, encoder.embedding_dim_, bias)
        return trunk, top, not pooled
    raise TypeError(f"modality {name!r}: MultimodalNet needs skmm ImageEncoder / TextEncoder modalities, got "
                    f"{type(encoder).__name__}")


class _PooledTrunk:
    """A backbone that cannot be cut: the encoder's own pooled embedding (``encode_rows`` without a trunk)."""

    spec = None


def run_trunk(encoder, trunk, values, view=0):
    """Per value, the trunk's output (None where it failed), and the failures (position -> message)."""
    if isinstance(trunk, _PooledTrunk):
        embeddings, problems, _, _ = encoder.encode_rows(values)
        return [None if p in problems else embeddings[p] for p in range(len(embeddings))], problems
    if view:
        trunk = ImageTrunk(trunk.split, trunk.start, trunk.pooled, view=view)
    outputs, problems, _, _ = encoder.encode_rows(values, trunk=trunk)
    return outputs, problems
