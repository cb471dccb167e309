"""The one training loop of skmm's torch models (the estimators and the fusion gate).

An epoch is :meth:`Trainer.train_epoch` over shuffled batches, then
:meth:`Trainer.validation_step` on the held-out rows (when there are any).
What else a run does after an epoch is a list of small policies:
:class:`Progress` (printing), :class:`EarlyStopping` and :class:`BestWeights`
(the best validation epoch's weights restored at the end). Callers supply the
module, the optimizer, the loss, a score (accuracy, R²...) and the batches;
the seeding is here once.
"""

from __future__ import annotations

import copy
import warnings
from dataclasses import dataclass, field

from numbers import Integral, Real

import numpy as np
import torch
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils._param_validation import Interval, StrOptions
from tqdm.auto import tqdm

from ._messages import caller_stacklevel

# The training parameters every skmm torch estimator takes, with their constraints (one place for both).
TRAINING_CONSTRAINTS = {
    "hidden_layer_sizes": [Interval(Integral, 1, None, closed="left"), "array-like"],
    "dropout": [Interval(Real, 0, 1, closed="left")],
    "optimizer": [StrOptions({"adam", "adamw", "sgd"})],
    "learning_rate": [Interval(Real, 0, None, closed="neither")],
    "weight_decay": [Interval(Real, 0, None, closed="left")],
    "batch_size": [Interval(Integral, 1, None, closed="left")],
    "max_epochs": [Interval(Integral, 1, None, closed="left")],
    "early_stopping": [StrOptions({"auto"}), "boolean"],
    "validation_fraction": [Interval(Real, 0, 1, closed="neither")],
    "n_iter_no_change": [Interval(Integral, 1, None, closed="left")],
    "tol": [Interval(Real, 0, None, closed="left")],
    "device": [str, torch.device],
    "random_state": ["random_state"],
    "verbose": ["verbose"],
}


def make_optimizer(name, parameters, *, learning_rate, weight_decay, momentum):
    """``"adam"``, ``"adamw"`` or ``"sgd"`` (Nesterov momentum when ``momentum > 0``) over ``parameters``."""
    if name == "sgd":
        return torch.optim.SGD(parameters, lr=learning_rate, momentum=momentum, weight_decay=weight_decay,
                               nesterov=momentum > 0)
    cls = torch.optim.Adam if name == "adam" else torch.optim.AdamW
    return cls(parameters, lr=learning_rate, weight_decay=weight_decay)


def inference_device(device):
    """Where predictions run in float64: the training device, or the CPU where float64 is missing (MPS)."""
    return "cpu" if torch.device(device).type == "mps" else device


def inference_copy(module, device):
    """``module`` in float64 for predicting: a row's prediction must not depend on the other rows of its
    batch, and in float32 the blocking of a matrix product (which follows the batch size) moves the last digits."""
    return copy.deepcopy(module).double().to(inference_device(device)).eval()


def seeded_devices(device):
    """The CUDA devices whose random state a seeded run on ``device`` forks (none on a CPU)."""
    device = torch.device(device)
    return [device.index or 0] if device.type == "cuda" else []


# A validation split of at least this many rows is a usable stopping signal: early_stopping="auto" turns on there.
AUTO_EARLY_STOPPING_ROWS = 100


def early_stopping_on(early_stopping, n_rows, validation_fraction):
    """Whether ``early_stopping`` ("auto" or a boolean) holds out a validation split of ``n_rows``."""
    if early_stopping == "auto":
        return n_rows * validation_fraction >= AUTO_EARLY_STOPPING_ROWS
    return bool(early_stopping)


# Below AUTO_EARLY_STOPPING_ROWS validation rows, a split of at least this many still makes a choice (then refit).
SELECTION_ROWS = 10


def selects_then_refits(early_stopping, n_rows, validation_fraction):
    """Whether ``early_stopping="auto"`` on ``n_rows`` makes a choice on a validation split and then trains again
    on every row: where the split is too small to give up its rows for good, but not too small to choose with."""
    return (early_stopping == "auto" and not early_stopping_on(early_stopping, n_rows, validation_fraction)
            and n_rows * validation_fraction >= SELECTION_ROWS)


def record_history(estimator, history):
    """The training history as scikit-learn-style fitted attributes of ``estimator``."""
    estimator.n_iter_ = history.n_epochs
    estimator.loss_curve_ = list(history.loss)
    estimator.validation_loss_curve_ = list(history.validation_loss)
    estimator.validation_score_curve_ = list(history.validation_score)
    estimator.best_epoch_ = history.best_epoch


@dataclass
class History:
    """What an estimator reports of its training (kept across ``partial_fit`` calls)."""

    loss: list = field(default_factory=list)
    validation_loss: list = field(default_factory=list)
    validation_score: list = field(default_factory=list)
    n_epochs: int = 0
    best_epoch: int | None = None


@dataclass
class Epoch:
    """What one epoch measured: what the policies read."""

    loss: float
    validation_loss: float | None = None
    score: float | None = None

    @property
    def monitored(self):
        """The loss that decides stopping: the validation loss when there is one, else the training loss."""
        return self.loss if self.validation_loss is None else self.validation_loss


class Policy:
    """A step of :meth:`Trainer.run` that a run may or may not have: early stopping, best weights, progress."""

    def batches(self, batches, history):
        """The epoch's training batches, possibly wrapped (a progress bar)."""
        return batches

    def after_epoch(self, trainer, history, epoch):
        """Called after every epoch; return True to stop training."""
        return False

    def after_training(self, trainer):
        """Called once, after the last epoch."""


class Progress(Policy):
    """``verbose`` 1: a line per epoch; 2: also a progress bar over each epoch's batches."""

    def __init__(self, verbose, name):
        self.verbose = verbose
        self.name = name

    def batches(self, batches, history):
        if self.verbose >= 2:
            return tqdm(batches, desc=f"{self.name} epoch {history.n_epochs + 1}", leave=False)
        return batches

    def after_epoch(self, trainer, history, epoch):
        if self.verbose:
            line = f"epoch {history.n_epochs}: loss {epoch.loss:.5f}"
            if epoch.validation_loss is not None:
                line += f", validation loss {epoch.validation_loss:.5f}"
            if epoch.score is not None:
                line += f", validation score {epoch.score:.4f}"
            print(line, flush=True)
        return False


class EarlyStopping(Policy):
    """Stop when the monitored loss has not improved by more than ``tol`` for ``patience`` epochs.

    The monitored loss is the validation loss when there is a validation set,
    else the training loss. A model whose best validation score has not yet
    beaten ``baseline`` (what always predicting the majority class, or the
    mean, scores) by ``margin`` (about one standard error of that score on
    the validation rows) is never stopped early: a slow start is not a
    plateau. :attr:`improved` says whether the last epoch was a new best.
    """

    def __init__(self, patience, tol, baseline=None, margin=0.0):
        self.patience = patience
        self.tol = tol
        self.baseline = baseline
        self.margin = margin
        self.best_loss, self.best_score, self.stale, self.improved = np.inf, -np.inf, 0, False

    def after_epoch(self, trainer, history, epoch):
        if epoch.score is not None:
            self.best_score = max(self.best_score, epoch.score)
        self.improved = epoch.monitored < self.best_loss - self.tol
        if self.improved:
            self.best_loss, self.stale = epoch.monitored, 0
        else:
            self.stale += 1
        near_baseline = (self.baseline is not None and epoch.validation_loss is not None
                         and self.best_score <= self.baseline + self.margin)
        return self.stale >= self.patience and not near_baseline


class BestWeights(Policy):
    """Keep the weights of the epoch that ``stopping`` last called a new best, and restore them at the end."""

    def __init__(self, stopping):
        self.stopping = stopping
        self.state = None

    def after_epoch(self, trainer, history, epoch):
        if self.stopping.improved:
            self.state = copy.deepcopy(trainer.module.state_dict())
            history.best_epoch = history.n_epochs
        return False

    def after_training(self, trainer):
        if self.state is not None:
            trainer.module.load_state_dict(self.state)


def standard_policies(*, verbose, name, stopping=None, validating=False):
    """Progress, then (with ``stopping``) early stopping, and the best weights restored where there is validation."""
    policies = [Progress(verbose, name)]
    if stopping is not None:
        policies.append(stopping)
        if validating:
            policies.append(BestWeights(stopping))
    return policies


class Trainer:
    """Trains ``module`` with ``optimizer`` on ``loss(outputs, targets)``.

    Parameters
    ----------
    module : torch.nn.Module
        Called on a batch's inputs (a tensor or a dict of tensors).
    optimizer : torch.optim.Optimizer
    loss : callable
        ``(outputs, targets) -> scalar tensor``.
    score : callable, optional
        ``(outputs, targets) -> float``, higher is better; reported per epoch
        and compared with :attr:`EarlyStopping.baseline`.
    scheduler : torch.optim.lr_scheduler.LRScheduler, optional
        Stepped after every batch.
    """

    def __init__(self, module, optimizer, loss, *, score=None, scheduler=None):
        self.module = module
        self.optimizer = optimizer
        self.loss = loss
        self.score = score
        self.scheduler = scheduler

    def train_step(self, inputs, targets):
        """One optimisation step on one batch; returns the batch's loss."""
        self.optimizer.zero_grad(set_to_none=True)
        loss = self.loss(self.module(inputs), targets)
        loss.backward()
        self.optimizer.step()
        if self.scheduler is not None:
            self.scheduler.step()
        return float(loss.detach())

    def train_epoch(self, batches):
        """One pass over ``batches``; returns the mean loss per row."""
        self.module.train()
        total, count = 0.0, 0
        for inputs, targets in batches:
            n = batch_length(targets)
            total += self.train_step(inputs, targets) * n
            count += n
        return total / max(count, 1)

    def validation_step(self, batches):
        """Loss and score of the module on held-out batches of ``(inputs, targets)``."""
        self.module.eval()
        outputs, targets = [], []
        with torch.no_grad():
            for inputs, batch_targets in batches:
                outputs.append(self.module(inputs))
                targets.append(batch_targets)
        outputs, targets = join_batches(outputs), join_batches(targets)
        loss = float(self.loss(outputs, targets))
        return loss, (float(self.score(outputs, targets)) if self.score is not None else None)

    def run(self, train_batches, history, *, epochs, validation_batches=None, policies=(), seed=0, devices=()):
        """Train for at most ``epochs`` epochs; ``train_batches()`` yields one epoch's ``(inputs, targets)``.

        After each epoch the ``policies`` (see :func:`standard_policies`) run
        in order; training stops when one of them says so.
        """
        # Dropout draws from the global generator: fork it so that training is repeatable and leaves
        # the caller's random state untouched.
        with torch.random.fork_rng(devices=list(devices)):
            torch.manual_seed(seed + history.n_epochs)
            for _ in range(epochs):
                batches = train_batches()
                for policy in policies:
                    batches = policy.batches(batches, history)
                epoch = Epoch(self.train_epoch(batches))
                history.n_epochs += 1
                history.loss.append(epoch.loss)
                if validation_batches is not None:
                    epoch.validation_loss, epoch.score = self.validation_step(validation_batches)
                    history.validation_loss.append(epoch.validation_loss)
                    if epoch.score is not None:
                        history.validation_score.append(epoch.score)
                if any([policy.after_epoch(self, history, epoch) for policy in policies]):
                    break
        for policy in policies:
            policy.after_training(self)
        self.module.eval()


def batch_length(batch):
    return len(batch) if torch.is_tensor(batch) else len(next(iter(batch.values())))


def join_batches(parts):
    """Batches of outputs or targets joined: tensors, lists of tensors (one per task) or dicts of tensors."""
    if torch.is_tensor(parts[0]):
        return torch.cat(parts)
    if isinstance(parts[0], (list, tuple)):
        return [torch.cat([part[i] for part in parts]) for i in range(len(parts[0]))]
    return {key: torch.cat([part[key] for part in parts]) for key in parts[0]}


def warn_if_no_better_than_baseline(estimator, score, baseline, where):
    """Warn when a fitted model scores no better than the trivial prediction (majority class or mean)."""
    if score is not None and baseline is not None and score <= baseline + 1e-9 and baseline < 0.999:
        warnings.warn(
            f"{type(estimator).__name__}: the fitted model scores {score:.4f} on the {where} rows, no better "
            f"than always predicting the most frequent class (or the mean): {baseline:.4f}. It has learned "
            "nothing usable; check the features, or train longer (max_epochs, learning_rate).",
            ConvergenceWarning, stacklevel=caller_stacklevel())
