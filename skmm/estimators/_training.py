"""The one training loop of skmm's torch estimators.

An epoch is ``train_step`` over shuffled batches, then ``validation_step`` on
the held-out rows (when there are any). :class:`Stopping` decides when to
stop; the weights of the best validation epoch are restored at the end.
Estimators supply the module, the optimizer, the loss, a score (accuracy,
R²...) and the batches; everything else, seeding included, is here once.
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


def record_history(estimator, history):
    """The training history as scikit-learn-style fitted attributes of ``estimator``."""
    estimator.n_iter_ = history.n_epochs
    estimator.loss_curve_ = list(history.loss)
    estimator.validation_loss_curve_ = list(history.validation_loss)
    estimator.validation_score_curve_ = list(history.validation_score)
    estimator.best_epoch_ = history.best_epoch


@dataclass
class Stopping:
    """When training stops before ``max_epochs``.

    The monitored loss (validation loss when there is a validation set, else
    the training loss) must improve by more than ``tol`` within ``patience``
    epochs. A model whose best validation score has not yet beaten
    ``baseline`` (what always predicting the majority class, or the mean,
    scores) by ``margin`` (about one standard error of that score on the
    validation rows) is never stopped early: a slow start is not a plateau.
    """

    patience: int
    tol: float
    baseline: float | None = None
    margin: float = 0.0


@dataclass
class History:
    """What an estimator reports of its training (kept across ``partial_fit`` calls)."""

    loss: list = field(default_factory=list)
    validation_loss: list = field(default_factory=list)
    validation_score: list = field(default_factory=list)
    n_epochs: int = 0
    best_epoch: int | None = None


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
        and compared with :attr:`Stopping.baseline`.
    scheduler : torch.optim.lr_scheduler.LRScheduler, optional
        Stepped after every batch.
    verbose : int
        1: a line per epoch; 2: also a progress bar over each epoch's batches.
    """

    def __init__(self, module, optimizer, loss, *, score=None, scheduler=None, verbose=0, name="training"):
        self.module = module
        self.optimizer = optimizer
        self.loss = loss
        self.score = score
        self.scheduler = scheduler
        self.verbose = verbose
        self.name = name

    def train_step(self, inputs, targets):
        """One optimisation step on one batch; returns the batch's loss."""
        self.optimizer.zero_grad(set_to_none=True)
        loss = self.loss(self.module(inputs), targets)
        loss.backward()
        self.optimizer.step()
        if self.scheduler is not None:
            self.scheduler.step()
        return float(loss.detach())

    def validation_step(self, batches):
        """Loss and score of the module on held-out batches of ``(inputs, targets)``."""
        self.module.eval()
        outputs, targets = [], []
        with torch.no_grad():
            for inputs, batch_targets in batches:
                outputs.append(self.module(inputs))
                targets.append(batch_targets)
        outputs, targets = _join(outputs), _join(targets)
        loss = float(self.loss(outputs, targets))
        return loss, (float(self.score(outputs, targets)) if self.score is not None else None)

    def run(self, train_batches, history, *, epochs, validation_batches=None, stopping=None, seed=0,
            devices=()):
        """Train for at most ``epochs`` epochs; ``train_batches()`` yields one epoch's ``(inputs, targets)``.

        With ``stopping``, stops early (see :class:`Stopping`); with validation
        batches, the best validation epoch's weights are restored.
        """
        best_loss, best_score, best_state, stale = np.inf, -np.inf, None, 0
        # Dropout draws from the global generator: fork it so that training is repeatable and leaves
        # the caller's random state untouched.
        with torch.random.fork_rng(devices=list(devices)):
            torch.manual_seed(seed + history.n_epochs)
            for _ in range(epochs):
                self.module.train()
                total, count = 0.0, 0
                batches = train_batches()
                if self.verbose >= 2:
                    batches = tqdm(batches, desc=f"{self.name} epoch {history.n_epochs + 1}", leave=False)
                for inputs, targets in batches:
                    n = _length(targets)
                    total += self.train_step(inputs, targets) * n
                    count += n
                history.n_epochs += 1
                history.loss.append(total / max(count, 1))
                monitored, line = history.loss[-1], f"epoch {history.n_epochs}: loss {history.loss[-1]:.5f}"
                if validation_batches is not None:
                    monitored, score = self.validation_step(validation_batches)
                    history.validation_loss.append(monitored)
                    line += f", validation loss {monitored:.5f}"
                    if score is not None:
                        history.validation_score.append(score)
                        best_score = max(best_score, score)
                        line += f", validation score {score:.4f}"
                if self.verbose:
                    print(line, flush=True)
                if stopping is None:
                    continue
                if monitored < best_loss - stopping.tol:
                    best_loss, stale = monitored, 0
                    if validation_batches is not None:
                        best_state = copy.deepcopy(self.module.state_dict())
                        history.best_epoch = history.n_epochs
                else:
                    stale += 1
                near_baseline = (stopping.baseline is not None and validation_batches is not None
                                 and best_score <= stopping.baseline + stopping.margin)
                if stale >= stopping.patience and not near_baseline:
                    break
        if best_state is not None:
            self.module.load_state_dict(best_state)  # the best weights seen on validation
        self.module.eval()


def _length(batch):
    return len(batch) if torch.is_tensor(batch) else len(next(iter(batch.values())))


def _join(parts):
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
            ConvergenceWarning, stacklevel=3)
