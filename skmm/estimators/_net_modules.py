"""The torch modules of a MultimodalNet: each modality's trainable top, the fusion, the task heads.

A modality's input is what its frozen trunk made of each row (see
``skmm.encoders.trunks``), padded into a batch: image feature maps
``(B, C, H, W)``, text hidden states ``(B, T, D)`` with their token mask, or
pooled embeddings ``(B, D)`` when nothing of that backbone trains. A row
without the modality has zeros there and ``present`` False.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .._defaults import NETWORK_FUSION_METHODS
from ..encoders.trunks import run_text_layers
from ._mlp_base import build_mlp

FUSIONS = NETWORK_FUSION_METHODS


def _keep_norm_statistics(module):
    """Batch norms of pretrained blocks keep their running statistics (small batches would spoil them)."""
    for sub in module.modules():
        if isinstance(sub, nn.modules.batchnorm._BatchNorm):
            sub.eval()


class ImageTop(nn.Module):
    """The trainable top blocks of a CNN (possibly none); returns its regions and their average."""

    def __init__(self, units, width, depths=None):
        super().__init__()
        self.units = units
        self.width = width
        # per unit, how many of the top's blocks lie above it (0: the last block and the units after it)
        self.depths = [0] * len(units) if depths is None else list(depths)

    def blocks_by_depth(self):
        """``(depth, unit)`` for each unit: the number of trained blocks above it."""
        return list(zip(self.depths, self.units))

    def forward(self, x, mask=None):
        if x.ndim == 2:  # pooled embeddings: nothing of the backbone trains
            return None, None, x
        x = self.units(x) if len(self.units) else x
        regions = x.flatten(2).transpose(1, 2)  # (B, H*W, C)
        return regions, None, regions.mean(dim=1)

    def train(self, mode=True):
        super().train(mode)
        _keep_norm_statistics(self)
        return self


class TextTop(nn.Module):
    """The trainable top layers of a transformer (possibly none), then the model's own pooling."""

    def __init__(self, layers, pooling, normalize, width, position_bias=None):
        super().__init__()
        self.layers = layers
        self.position_bias = position_bias
        self.pooling = pooling
        self.normalize = normalize
        self.width = width

    def blocks_by_depth(self):
        """``(depth, layer)`` for each layer: the number of trained layers above it."""
        return [(len(self.layers) - 1 - i, layer) for i, layer in enumerate(self.layers)]

    def forward(self, x, mask):
        if x.ndim == 2:
            return None, None, x
        if len(self.layers):
            x = run_text_layers(self.layers, x, mask, self.position_bias)
        pooled = self.pooling({"token_embeddings": x, "attention_mask": mask})["sentence_embedding"]
        if self.normalize:
            pooled = nn.functional.normalize(pooled, p=2, dim=1)
        return x, mask, pooled


def _mean_and_spread(rows):
    """The rows' mean and root mean squared distance to it (1 where they do not spread)."""
    mean = rows.mean(dim=0)
    spread = ((rows - mean) ** 2).sum(dim=1).mean().sqrt()
    return mean, torch.where(spread > 1e-12, spread, torch.ones_like(spread))


class FusionLayer(nn.Module):
    """concat | average | weighted | gated (over per-modality projections to ``width``) | attention.

    Each modality's pooled vector enters centred on its training mean and
    scaled to unit total spread (rows 1 away from the mean on average, the
    relative variance of its directions kept), as :class:`~skmm.ModalityFusion`
    scales its wide blocks (each whole, whatever its width: every modality
    here is an embedding); then every block is multiplied by one gain,
    ``sqrt(sum(widths) / len(widths))``, which gives the average input
    feature unit variance (``standardize="global"``), as
    :class:`~skmm.TorchMLPClassifier`'s ``standardize="global"`` does on
    those concatenated blocks: at unit total spread a 1,664-wide input is ~29
    times smaller, and a head's first layer learns that much slower. The
    statistics come from the network as it starts, over the training rows
    (:meth:`set_statistics`); where a modality's blocks train (``adapts``),
    from each batch while it trains, kept as running averages for predicting.
    Networks saved before have ``standardize="block"`` (no gain) or
    ``"features"``: a batch norm per feature, which lifts every low-variance
    direction of an embedding to the scale of its main ones.
    """

    def __init__(self, method, widths, width, dropout, standardize="global", adapts=None):
        super().__init__()
        self.method = method
        self.n = len(widths)
        self.standardize = standardize
        self.gain = math.sqrt(sum(widths) / len(widths)) if standardize == "global" else 1.0
        # Per modality, whether its branch trains; its statistics then follow the batches (with running
        # averages for predicting), as the trained blocks move its vectors away from where they started.
        self.adapts = list(adapts or [False] * self.n)
        if standardize in ("block", "global"):
            for m, w in enumerate(widths):
                self.register_buffer(f"mean{m}", torch.zeros(w))
                self.register_buffer(f"spread{m}", torch.ones(()))
        else:
            self.norms = nn.ModuleList(nn.BatchNorm1d(w) for w in widths)
        if method == "concat":
            self.out_width = sum(widths) + self.n
            return
        self.projections = nn.ModuleList(nn.Linear(w, width) for w in widths)
        self.out_width = width
        if method == "weighted":
            self.logits = nn.Parameter(torch.zeros(self.n))
        elif method == "gated":
            self.gate = nn.Linear(self.n * width, self.n)
        elif method == "attention":
            self.cls = nn.Parameter(torch.zeros(1, 1, width))
            self.kinds = nn.Parameter(torch.zeros(self.n, width))
            self.token_norm = nn.LayerNorm(width)
            self.layer = nn.TransformerEncoderLayer(width, nhead=4 if width % 4 == 0 else 1, dim_feedforward=2 * width,
                                                    dropout=dropout, batch_first=True)
            nn.init.normal_(self.kinds, std=0.02)

    def forward(self, parts, present):
        """``parts``: per modality ``(sequence, sequence_mask, pooled)``; ``present``: (B, M) bool."""
        parts = [(sequence, mask, self._standardized(m, pooled, present[:, m]))
                 for m, (sequence, mask, pooled) in enumerate(parts)]
        weights = present.to(parts[0][2].dtype)
        if self.method == "concat":
            pooled = [p[2] * weights[:, [m]] for m, p in enumerate(parts)]
            return torch.cat(pooled + [weights], dim=1)
        if self.method == "attention":
            return self._attend(parts, present)
        projected = torch.stack([proj(p[2]) for proj, p in zip(self.projections, parts)], dim=1)  # (B, M, W)
        if self.method == "weighted":
            weights = weights * torch.softmax(self.logits, dim=0)
        elif self.method == "gated":
            logits = self.gate(projected.flatten(1)).masked_fill(~present, float("-inf"))
            weights = torch.softmax(logits, dim=1)
        weights = weights / weights.sum(dim=1, keepdim=True).clamp_min(1e-12)
        return (weights.unsqueeze(2) * projected).sum(dim=1)

    def set_statistics(self, m, pooled):
        """Centre and scale modality ``m`` by the pooled vectors ``pooled`` (its training rows)."""
        mean, spread = _mean_and_spread(pooled)
        getattr(self, f"mean{m}").copy_(mean)
        getattr(self, f"spread{m}").copy_(spread)

    def _standardized(self, m, pooled, present):
        if self.standardize in ("block", "global"):
            mean, spread = getattr(self, f"mean{m}"), getattr(self, f"spread{m}")
            if self.training and self.adapts[m] and int(present.sum()) >= 2:  # its branch trains: follow it
                batch_mean, batch_spread = _mean_and_spread(pooled[present])
                with torch.no_grad():
                    mean.mul_(0.9).add_(0.1 * batch_mean)
                    spread.mul_(0.9).add_(0.1 * batch_spread)
                mean, spread = batch_mean, batch_spread
            # divided, not multiplied by gain / spread: with gain 1 ("block", saved before) the very same arithmetic
            return torch.where(present.unsqueeze(1), (pooled - mean) / (spread / self.gain), torch.zeros_like(pooled))
        norm = self.norms[m]
        if self.training and int(present.sum()) < 2:  # too few rows for batch statistics
            return nn.functional.batch_norm(pooled, norm.running_mean, norm.running_var, norm.weight, norm.bias,
                                            False, 0.0, norm.eps)
        out = torch.zeros_like(pooled)
        out[present] = norm(pooled[present])
        return out

    def _attend(self, parts, present):
        tokens, keep = [self.cls.expand(len(present), -1, -1)], [present.new_ones(len(present), 1)]
        for m, (sequence, mask, pooled) in enumerate(parts):
            if sequence is None:  # no sequence for this modality: its pooled vector is one token
                sequence, mask = pooled.unsqueeze(1), None
            projected = self.token_norm(self.projections[m](sequence)) + self.kinds[m]
            valid = (mask.bool() if mask is not None else projected.new_ones(projected.shape[:2], dtype=torch.bool))
            tokens.append(projected)
            keep.append(valid & present[:, [m]])
        out = self.layer(torch.cat(tokens, dim=1), src_key_padding_mask=~torch.cat(keep, dim=1))
        return out[:, 0]


class MultimodalNet(nn.Module):
    """Branches (one per modality) -> fusion -> one MLP head per task."""

    def __init__(self, branches, fusion, head_sizes, hidden_layer_sizes, dropout):
        super().__init__()
        self.branches = nn.ModuleList(branches)
        self.fusion = fusion
        self.heads = nn.ModuleList(build_mlp(fusion.out_width, hidden_layer_sizes, size, "relu", dropout)
                                   for size in head_sizes)

    def forward(self, inputs):
        """``inputs``: ``{"present": (B, M) bool, "x<m>": tensor, "mask<m>": tensor}``; returns one output per task."""
        present = inputs["present"]
        parts = [branch(inputs[f"x{m}"], inputs.get(f"mask{m}")) for m, branch in enumerate(self.branches)]
        fused = self.fusion(parts, present)
        return [head(fused) for head in self.heads]
