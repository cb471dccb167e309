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
from sklearn.preprocessing import LabelEncoder


def _gateable(present):
    """A row with no modality at all counts every one as present: its (zero) blocks are averaged evenly."""
    return present | ~present.any(axis=1, keepdims=True)


def _masked_softmax(logits, present):
    present = _gateable(present)
    logits = np.where(present, logits, -np.inf)
    logits = logits - logits.max(axis=1, keepdims=True)
    weights = np.exp(logits)
    return weights / weights.sum(axis=1, keepdims=True)


class ModalityGate:
    """Fit and apply the gate; blocks are ``(n, k)`` arrays in one common space, ``present`` is ``(n, M)`` bool."""

    def __init__(self, max_iter=300, learning_rate=0.01, alpha=1e-4):
        self.max_iter = max_iter
        self.learning_rate = learning_rate
        self.alpha = alpha

    def fit(self, blocks, present, y, target_type="auto"):
        import torch

        from ._alignment import target_kind

        kind = target_kind(y, target_type)
        if kind == "classes":
            target = torch.as_tensor(LabelEncoder().fit_transform(y), dtype=torch.long)
            n_outputs = int(target.max()) + 1

            def loss_of(output):
                return torch.nn.functional.cross_entropy(output, target)
        elif kind == "continuous":
            values = np.asarray(y, dtype=np.float32).reshape(len(y), -1)
            values = (values - values.mean(axis=0)) / (values.std(axis=0) + 1e-12)
            target = torch.as_tensor(values)
            n_outputs = target.shape[1]

            def loss_of(output):
                return torch.nn.functional.mse_loss(output, target)
        else:
            raise ValueError(f"method='gated' learns its gate from y, which must be class labels or continuous "
                             f"values; got a {kind!r} target")
        z = torch.as_tensor(np.stack(blocks, axis=1), dtype=torch.float32)  # (n, M, k)
        mask = torch.as_tensor(_gateable(present))
        n, n_modalities, width = z.shape
        gate = torch.nn.Linear(n_modalities * width, n_modalities)
        head = torch.nn.Linear(width, n_outputs)
        with torch.no_grad():
            # Zeros: the gate starts as the plain average, and with full-batch steps the fit is
            # deterministic (the head is a softmax / linear regression, which needs no random start).
            for parameter in (*gate.parameters(), *head.parameters()):
                parameter.zero_()
        optimizer = torch.optim.Adam([*gate.parameters(), *head.parameters()], lr=self.learning_rate,
                                     weight_decay=self.alpha)
        flat = z.reshape(n, -1)
        for _ in range(self.max_iter):
            optimizer.zero_grad()
            weights = torch.softmax(gate(flat).masked_fill(~mask, float("-inf")), dim=1)
            loss = loss_of(head((weights.unsqueeze(2) * z).sum(dim=1)))
            loss.backward()
            optimizer.step()
        self.coef_ = gate.weight.detach().numpy().T.copy()  # (M * k, M)
        self.intercept_ = gate.bias.detach().numpy().copy()
        return self

    def weights(self, blocks, present):
        """Per-row gate values, ``(n, M)``, zero where a modality is absent."""
        flat = np.concatenate(blocks, axis=1)
        return _masked_softmax(flat @ self.coef_ + self.intercept_, present)

    def fuse(self, blocks, present):
        weights = self.weights(blocks, present)
        return sum(weights[:, [m]] * block for m, block in enumerate(blocks)).astype(np.float32)
