"""A learned per-sample gate over modality blocks, for ``ModalityFusion(method="gated")``.

The gate is a softmax over the modalities, computed from all the (aligned)
blocks of a row: ``g(x) = softmax(W [z_1, ..., z_M] + b)`` and the fused row is
``sum_m g_m(x) z_m``. A row whose image is uninformative (a screenshot, a
logo) can lean on its text and the next row the other way, which a fixed
average or weighting cannot do. ``W`` and ``b`` are learned in ``fit`` jointly
with a throw-away linear head on ``y`` (cross-entropy for class labels,
squared error for a continuous target); only the gate is kept, so transform
is plain numpy.
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.preprocessing import LabelEncoder

from .._target_kind import target_kind
from .._targets import ClassTargets, RegressionTargets
from .._training import History, Trainer


def _gateable(present):
    """A row with no modality at all counts every one as present: its (zero) blocks are averaged evenly."""
    return present | ~present.any(axis=1, keepdims=True)


def _masked_softmax(logits, present):
    present = _gateable(present)
    logits = np.where(present, logits, -np.inf)
    logits = logits - logits.max(axis=1, keepdims=True)
    weights = np.exp(logits)
    return weights / weights.sum(axis=1, keepdims=True)


class _GatedHead(torch.nn.Module):
    """The gate and the throw-away linear head it is trained with, on ``(blocks (n, M, k), present (n, M))``."""

    def __init__(self, n_modalities, width, n_outputs):
        super().__init__()
        self.gate = torch.nn.Linear(n_modalities * width, n_modalities)
        self.head = torch.nn.Linear(width, n_outputs)
        with torch.no_grad():
            # Zeros: the gate starts as the plain average, and the head (a softmax / linear regression)
            # needs no random start.
            for parameter in self.parameters():
                parameter.zero_()

    def forward(self, inputs):
        z, present = inputs
        weights = torch.softmax(self.gate(z.reshape(len(z), -1)).masked_fill(~present, float("-inf")), dim=1)
        return self.head((weights.unsqueeze(2) * z).sum(dim=1))


class ModalityGate:
    """Fit and apply the gate; blocks are ``(n, k)`` arrays in one common space, ``present`` is ``(n, M)`` bool."""

    def __init__(self, max_iter=300, learning_rate=0.01, alpha=1e-4):
        self.max_iter = max_iter
        self.learning_rate = learning_rate
        self.alpha = alpha

    def fit(self, blocks, present, y, target_type="auto"):
        kind = target_kind(y, target_type)
        if kind not in ("classes", "continuous"):
            raise ValueError(f"method='gated' learns its gate from y, which must be class labels or continuous "
                             f"values; got a {kind!r} target")
        # Labels as indices first: target_type="classes" may declare whole-number floats to be classes.
        labels = LabelEncoder().fit_transform(y) if kind == "classes" else np.asarray(y, dtype=np.float64)
        coder = (ClassTargets() if kind == "classes" else RegressionTargets()).fit(labels)
        z = torch.as_tensor(np.stack(blocks, axis=1), dtype=torch.float32)  # (n, M, k)
        network = _GatedHead(z.shape[1], z.shape[2], coder.n_outputs)
        inputs = (z, torch.as_tensor(_gateable(present)))
        targets = coder.tensors(coder.encode(labels), "cpu")
        optimizer = torch.optim.Adam(network.parameters(), lr=self.learning_rate, weight_decay=self.alpha)
        # Full-batch steps from a zero start: the fit is deterministic, one "epoch" per step.
        Trainer(network, optimizer, coder.loss("cpu")).run(lambda: [(inputs, targets)], History(),
                                                           epochs=self.max_iter)
        self.coef_ = network.gate.weight.detach().numpy().T.copy()  # (M * k, M)
        self.intercept_ = network.gate.bias.detach().numpy().copy()
        return self

    def weights(self, blocks, present):
        """Per-row gate values, ``(n, M)``, zero where a modality is absent."""
        flat = np.concatenate(blocks, axis=1)
        return _masked_softmax(flat @ self.coef_ + self.intercept_, present)

    def fuse(self, blocks, present):
        weights = self.weights(blocks, present)
        return sum(weights[:, [m]] * block for m, block in enumerate(blocks)).astype(np.float32)
