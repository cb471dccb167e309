"""How a MultimodalNet trains: the head on the frozen blocks first, then the blocks, kept only if they help.

1. **Probe.** The fusion and heads train on what the network's blocks make of
   every row as they were loaded (computed once, in inference mode), as
   TorchMLPClassifier trains (``probe_epochs``, a constant learning rate): as
   cheap as ``train_blocks=0``, and the solution the next stage starts from
   ("linear probing, then fine-tuning": a trained head does not send large,
   random gradients into pretrained blocks).
2. **Fine-tune.** Where blocks train, the whole network trains from there, the
   blocks at ``backbone_learning_rate`` (each block below another trained
   one ``layer_decay`` times slower than it) and the head at the same small
   rate.
3. **Choose.** With a validation split, the fine-tuned network is kept only if
   its validation loss beats the probe's; else the probe is restored
   (``blocks_trained_`` says which). The epoch of each stage is chosen on the
   same rows (early stopping restores the best one).
4. **Again, on every row.** Where a validation split is too small to give up
   its rows for good (``early_stopping="auto"`` below 1,000 rows), it only
   chooses whether the blocks help; the network then trains again from its
   first weights on every row, with the blocks' stage or without it.
"""

from __future__ import annotations

import copy
import math

import numpy as np
import torch

from .._training import History
from ._net_data import ModalityData


def warmup_cosine(optimizer, steps, warmup):
    """Linear warm-up over ``warmup`` of the ``steps``, then cosine decay to zero."""
    warm = max(1, int(warmup * steps))
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: min(1.0, (step + 1) / warm) * (
        0.5 * (1 + math.cos(math.pi * min(1.0, max(0, step - warm) / max(1, steps - warm))))))


class StagedTraining:
    """Mixed into the MultimodalNets: ``_train`` runs the stages above on ``network_``."""

    def _initialize_scheduler(self, optimizer, n_train_rows):
        return warmup_cosine(optimizer, self.max_epochs * math.ceil(n_train_rows / self.batch_size), self.warmup)

    def _blocks_to_train(self):
        """The parameters of the branches' blocks that the second stage trains (none: no second stage)."""
        if self.backbone_learning_rate == 0:
            return []
        return [p for branch in self.network_.branches for p in branch.parameters() if p.requires_grad]

    def _decayed_groups(self):
        """The trainable parameters as optimizer groups: each block at ``backbone_learning_rate * layer_decay **
        depth`` (depth: the trained blocks above it), the fusion and heads at ``backbone_learning_rate``."""
        depths = {id(p): depth for branch in self.network_.branches for depth, block in branch.blocks_by_depth()
                  for p in block.parameters()}
        groups = {}
        for p in self.network_.parameters():
            if p.requires_grad:
                groups.setdefault(depths.get(id(p), 0), []).append(p)
        return [{"params": params, "lr": self.backbone_learning_rate * self.layer_decay ** depth}
                for depth, params in sorted(groups.items())]

    def _train(self, data, targets, train, validation, train_blocks=True, pooled=None):
        """Train the stages on the rows ``train``; ``train_blocks=False`` skips the second (a choice made
        before, on validation rows); ``pooled``: :meth:`_pooled_data`, if already computed. Sets
        ``blocks_trained_``."""
        net = self.network_
        blocks = self._blocks_to_train()
        held_out = validation if validation is not None else train
        pooled = self._pooled_data(data) if pooled is None else pooled
        for m, modality in enumerate(pooled):
            net.fusion.set_statistics(m, torch.as_tensor(np.stack([modality.views[0][r] for r in train
                                                                   if modality.present[r]]), device=self.device_))
        for p in blocks:
            p.requires_grad_(False)
        # Attention reads the blocks' tokens, not their pooled vectors: its probe runs them (frozen).
        probe_data = data if self.fusion == "attention" else pooled
        adapts, net.fusion.adapts = net.fusion.adapts, [False] * len(data)  # the probe's inputs do not move
        # The probe is an MLP on fixed inputs: trained as TorchMLPClassifier trains (constant rate, its epoch
        # budget); 20 warm-up-cosine epochs under-trained a 16-class head on 427 rows by 3 points.
        probe_epochs = self.max_epochs if self.fusion == "attention" else self.probe_epochs
        self._say(f"stage 1: the fusion and heads on the blocks as loaded ({len(train)} rows)")
        probe_loss = self._fit_stage(probe_data, targets, train, held_out, validation is not None,
                                     [p for p in net.parameters() if p.requires_grad],
                                     self._head_rate,
                                     epochs=probe_epochs, schedule=False)
        net.fusion.adapts = adapts
        probe_epoch = self._history.best_epoch
        self.blocks_trained_ = False
        if blocks and train_blocks:
            probe_state = {k: v.clone() for k, v in net.state_dict().items()}
            for p in blocks:
                p.requires_grad_(True)
            self._say("stage 2: the top blocks train too (epochs counted on)")
            loss = self._fit_stage(data, targets, train, held_out, validation is not None,
                                   self._decayed_groups(), self.backbone_learning_rate,
                                   epochs=self.max_epochs, schedule=True)
            self.blocks_trained_ = validation is None or loss < probe_loss - self.tol
            if not self.blocks_trained_:  # the trained blocks did worse on the validation rows
                net.load_state_dict(probe_state)
                self._history.best_epoch = probe_epoch
            self._say("the trained blocks are kept" if self.blocks_trained_ else
                      "the trained blocks did not lower the validation loss: stage 1's network is kept")
            for p in blocks:
                p.requires_grad_(False)

    def _train_again_on_every_row(self, data, targets, train, validation):
        """Choose on ``validation`` whether training the blocks helps, then train the network again from its
        first weights on every row, with or without the blocks' stage as chosen, each stage for its budget (its
        epochs chosen on the training loss: on under 100 rows, a choice of epochs is noise); the validation
        curves are the choice's."""
        first_weights, blocks = copy.deepcopy(self.network_.state_dict()), self._blocks_to_train()
        pooled = self._pooled_data(data)  # the blocks as loaded: the same for both trainings
        self._train(data, targets, train, validation, pooled=pooled)
        blocks_help, choice, self._history = self.blocks_trained_, self._history, History()
        self._say(f"training again on every row, {'with' if blocks_help else 'without'} the blocks' stage")
        self.network_.load_state_dict(first_weights)
        for p in blocks:  # the first training leaves them frozen
            p.requires_grad_(True)
        self._train(data, targets, np.concatenate([train, validation]), None, train_blocks=blocks_help,
                    pooled=pooled)
        self._history.validation_loss, self._history.validation_score = choice.validation_loss, choice.validation_score

    def _say(self, message):
        if self.verbose:
            print(f"[{type(self).__name__}] {message}", flush=True)

    def _pooled_data(self, data):
        """Each modality's pooled output for every row and view, the blocks as loaded, in inference mode."""
        net = self.network_
        net.eval()
        pooled = [ModalityData(d.kind, False, d.present, [[None] * len(d.present) for _ in d.views]) for d in data]
        rows = np.arange(len(data[0].present))
        with torch.no_grad():
            for v in range(max(len(d.views) for d in data)):
                for start in range(0, len(rows), 256):
                    batch = rows[start:start + 256]
                    inputs = self._inputs(data, batch, [np.full(len(batch), min(v, len(d.views) - 1)) for d in data])
                    for m, branch in enumerate(net.branches):
                        if v < len(data[m].views):
                            vectors = branch(inputs[f"x{m}"], inputs.get(f"mask{m}"))[2].float().cpu().numpy()
                            for i in np.flatnonzero(data[m].present[batch]):
                                pooled[m].views[v][batch[i]] = vectors[i]
        return pooled

    def _fit_stage(self, data, targets, train, held_out, validating, parameters, learning_rate, *, epochs,
                   schedule):
        """One run of the training loop over ``parameters`` (``schedule``: warm-up and cosine decay); returns
        the held-out loss it ends with."""
        optimizer = self._initialize_optimizer(parameters, learning_rate)
        rng = np.random.default_rng(self._seed + self._history.n_epochs)
        checked = list(self._batches(data, targets, held_out))
        trainer = self._run_stage(lambda: self._batches(data, targets, train, rng), checked, optimizer=optimizer,
                                  scheduler=self._initialize_scheduler(optimizer, len(train)) if schedule else None,
                                  epochs=epochs, validating=validating)
        return trainer.validation_step(checked)[0]
