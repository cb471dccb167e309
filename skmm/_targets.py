"""What skmm's torch models need of their targets: kind, coding, loss, score, the trivial baseline, decoding.

One coder object per kind of target, fitted on ``y``, so that ``fit`` and
``partial_fit`` (and every estimator that trains a head, and the fusion gate)
code targets one way. Every coder follows :class:`TargetCoder`.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
import torch
from sklearn.preprocessing import LabelEncoder
from sklearn.utils.class_weight import compute_class_weight
from sklearn.utils.multiclass import check_classification_targets, type_of_target
from sklearn.utils.validation import column_or_1d
from torch import nn

from ._target_kind import standardization, target_kind


class TargetCoder(Protocol):
    """What a trained head needs of its targets (:class:`ClassTargets`, :class:`RegressionTargets`,
    :class:`TaskTargets`).

    ``fit(y, classes=None)`` learns the coding (``classes``: every class, on
    ``partial_fit``'s first batch); ``encode(y)`` gives what ``tensors``
    turns into training targets; the network's raw outputs go through
    ``output_transform`` (probabilities) and ``decode`` (labels, values).
    ``loss(device)``, ``score`` (higher is better), ``baseline`` (the trivial
    prediction's score) and ``margin`` (about one standard error of it) serve
    the training loop; ``stratify`` the validation split. ``n_outputs`` is the
    head's width (a list of widths for several tasks).
    """

    n_outputs: int | list

    def fit(self, y, classes=None): ...
    def check_classes(self, classes): ...
    def encode(self, y): ...
    def tensors(self, encoded, device, rows=None): ...
    def loss(self, device): ...
    def score(self, outputs, targets): ...
    def baseline(self, targets): ...
    def margin(self, baseline, n_rows): ...
    def stratify(self, targets, validation_fraction): ...
    def output_transform(self, outputs): ...
    def decode(self, outputs): ...


class ClassTargets:
    """Class labels (any type) as indices, or a multilabel indicator matrix as floats.

    Cross-entropy for binary / multiclass targets, binary cross-entropy per
    label for multilabel ones; ``class_weight`` (None, "balanced" or a dict)
    weighs the loss.
    """

    def __init__(self, class_weight=None):
        self.class_weight = class_weight

    def fit(self, y, classes=None):
        """Learn the classes from ``y``, or from ``classes`` (all of them) when ``y`` is a first batch."""
        self.kind = type_of_target(y)
        if self.kind == "multilabel-indicator":
            y = np.asarray(y)
            self.classes_ = np.arange(y.shape[1])
            self.n_outputs = y.shape[1]
            self._fit_class_weights(y.astype(np.float32))
            return self
        check_classification_targets(y)
        if np.ndim(y) == 2 and np.shape(y)[1] == 1:
            y = column_or_1d(y, warn=True)
        elif np.ndim(y) == 2:
            raise ValueError("y must be 1-D (or a multilabel indicator matrix); "
                             "multiclass-multioutput targets are not supported")
        if classes is not None:
            check_classification_targets(np.asarray(classes))
            self.kind = type_of_target(np.asarray(classes))
        self.label_encoder_ = LabelEncoder().fit(np.asarray(classes) if classes is not None else y)
        self.classes_ = self.label_encoder_.classes_
        if len(self.classes_) < 2:
            raise ValueError(f"the training data must contain at least 2 classes, got 1 class: {self.classes_}")
        self.n_outputs = len(self.classes_)
        self._fit_class_weights(self.encode(y))
        return self

    def check_classes(self, classes):
        if classes is not None and not np.array_equal(np.unique(classes), self.classes_):
            raise ValueError(f"classes {list(classes)} differ from those of the first call {self.classes_.tolist()}")

    def encode(self, y):
        if self.kind == "multilabel-indicator":
            y = np.asarray(y)
            if y.ndim != 2 or y.shape[1] != len(self.classes_):
                raise ValueError(f"y must be an indicator matrix with {len(self.classes_)} columns")
            return y.astype(np.float32)
        y = column_or_1d(np.asarray(y), warn=False) if np.ndim(y) == 2 else np.asarray(y)
        unseen = np.setdiff1d(y, self.classes_)
        if unseen.size:
            raise ValueError(f"y contains labels not seen in the first fit: {unseen.tolist()} "
                             f"(known classes: {self.classes_.tolist()})")
        return self.label_encoder_.transform(y)

    @property
    def dtype(self):
        return torch.float32 if self.kind == "multilabel-indicator" else torch.long

    def tensors(self, encoded, device, rows=None):
        return torch.as_tensor(encoded if rows is None else encoded[rows], dtype=self.dtype, device=device)

    def _fit_class_weights(self, targets):
        self.loss_weights_ = None
        if self.class_weight is None:
            return
        if self.kind == "multilabel-indicator":
            positives = targets.sum(axis=0)
            if self.class_weight == "balanced":
                weights = (len(targets) - positives) / np.maximum(positives, 1)
            else:
                weights = np.array([self.class_weight.get(c, 1.0) for c in self.classes_])
        else:
            weights = compute_class_weight(self.class_weight, classes=self.classes_,
                                           y=self.label_encoder_.inverse_transform(targets))
        self.loss_weights_ = np.asarray(weights, dtype=np.float32)

    def loss(self, device):
        weights = None if self.loss_weights_ is None else torch.as_tensor(self.loss_weights_, device=device)
        if self.kind == "multilabel-indicator":
            return nn.BCEWithLogitsLoss(pos_weight=weights)
        return nn.CrossEntropyLoss(weight=weights)

    def stratify(self, targets, validation_fraction):
        """``targets`` when a stratified hold-out of ``validation_fraction`` is possible, else None."""
        if self.kind == "multilabel-indicator":
            return None
        counts = np.bincount(targets)
        n_val = int(np.ceil(validation_fraction * len(targets)))
        return targets if counts.min() >= 2 and n_val >= len(counts) else None

    def _row_weights(self, targets):
        if self.loss_weights_ is None:
            return torch.ones(len(targets), device=targets.device)
        return torch.as_tensor(self.loss_weights_, device=targets.device)[targets]

    def score(self, logits, targets):
        """Accuracy (per label for multilabel targets), each row weighted by its class's ``class_weight``."""
        if self.kind == "multilabel-indicator":
            return float(((logits > 0) == (targets > 0.5)).float().mean())
        weights = self._row_weights(targets)
        return float((weights * (logits.argmax(dim=1) == targets)).sum() / weights.sum())

    def baseline(self, targets):
        """What always predicting the most frequent class (label value, per label) scores, as :meth:`score`."""
        if self.kind == "multilabel-indicator":
            share = targets.float().mean(dim=0)
            return float(torch.maximum(share, 1 - share).mean())
        weights = self._row_weights(targets)
        per_class = torch.zeros(self.n_outputs, device=targets.device).index_add_(0, targets, weights)
        return float(per_class.max() / weights.sum())

    def margin(self, baseline, n_rows):
        """About one standard error of the baseline's accuracy on ``n_rows`` rows."""
        return float(np.sqrt(baseline * (1 - baseline) / max(n_rows, 1)))

    def output_transform(self, logits):
        if self.kind == "multilabel-indicator":
            return torch.sigmoid(logits)
        return torch.softmax(logits, dim=1)

    def decode(self, proba):
        if self.kind == "multilabel-indicator":
            return (proba >= 0.5).astype(int)
        return self.classes_[np.argmax(proba, axis=1)]



class RegressionTargets:
    """Numeric targets, standardised for training (so one learning rate suits any scale) and mapped back."""

    def __init__(self, loss="squared_error", huber_delta=1.0):
        self.loss_name = loss
        self.huber_delta = huber_delta

    def fit(self, y, classes=None):
        y = np.asarray(y, dtype=np.float64)
        self.one_d = y.ndim == 1
        y2 = y.reshape(len(y), -1)
        self.mean_, self.scale_ = standardization(y2)
        self.n_outputs = y2.shape[1]
        return self

    def check_classes(self, classes):
        pass

    def encode(self, y):
        y = np.asarray(y, dtype=np.float64)
        return ((y.reshape(len(y), -1) - self.mean_) / self.scale_).astype(np.float32)

    dtype = torch.float32

    def tensors(self, encoded, device, rows=None):
        return torch.as_tensor(encoded if rows is None else encoded[rows], dtype=self.dtype, device=device)

    def loss(self, device):
        return nn.MSELoss() if self.loss_name == "squared_error" else nn.HuberLoss(delta=self.huber_delta)

    def stratify(self, targets, validation_fraction):
        return None

    def score(self, outputs, targets):
        """R², averaged over the outputs (as sklearn's ``r2_score``)."""
        residual = ((targets - outputs) ** 2).sum(dim=0)
        total = ((targets - targets.mean(dim=0)) ** 2).sum(dim=0).clamp_min(1e-12)
        return float((1 - residual / total).mean())

    def baseline(self, targets):
        """What predicting the mean scores: R² = 0."""
        return 0.0

    def margin(self, baseline, n_rows):
        """An R² that chance alone rarely reaches on ``n_rows`` rows."""
        return float(1 / np.sqrt(max(n_rows, 1)))

    def output_transform(self, outputs):
        return outputs

    def decode(self, outputs):
        values = outputs.astype(np.float64) * self.scale_ + self.mean_
        return values.ravel() if self.one_d else values



class TaskTargets:
    """Several target columns, one head each: class columns by cross-entropy, numeric ones by squared error.

    Targets travel as a dict ``{"t0": tensor, "t1": tensor, ...}`` and the
    network returns one output per task; the loss is the weighted sum of the
    tasks' losses, the score the mean of their scores (accuracy, R²).
    ``target_type`` ("auto", "classes", "continuous", or a list or dict of
    them) says which columns are classes; "auto" is :func:`target_kind`'s
    guess for a classifier, and "continuous" for a regressor (``regression``).
    """

    def __init__(self, regression, class_weight=None, label_smoothing=0.0, task_weights=None, target_type="auto"):
        self.regression = regression
        self.class_weight = class_weight
        self.label_smoothing = label_smoothing
        self.task_weights = task_weights
        self.target_type = target_type

    @staticmethod
    def _columns(y):
        """The target's columns, each with its own dtype (a DataFrame's columns stay apart)."""
        if hasattr(y, "iloc") and getattr(y, "ndim", 1) == 2:
            return [y.iloc[:, j].to_numpy() for j in range(y.shape[1])]
        y = np.asarray(y)
        return [column for column in y.reshape(len(y), -1).T]

    def _column_types(self, y, n_columns):
        """``target_type`` per column: a dict is keyed by a DataFrame's column names, else by position."""
        given = self.target_type
        if isinstance(given, str):
            types = [given] * n_columns
        elif isinstance(given, dict):
            names = list(y.columns) if hasattr(y, "columns") else list(range(n_columns))
            if any(key not in names for key in given):
                raise ValueError(f"target_type's keys {list(given)} must be among {names} (the column names "
                                 f"of a DataFrame y, else positions)")
            types = [given.get(name, "auto") for name in names]
        else:
            types = list(given)
            if len(types) != n_columns:
                raise ValueError(f"target_type must give one type per target column ({n_columns}), got {given!r}")
        wrong = [kind for kind in types if kind not in ("auto", "classes", "continuous")]
        if wrong:
            raise ValueError(f"target_type values must be 'auto', 'classes' or 'continuous', got {wrong}")
        return types

    def _is_class_column(self, column, target_type):
        if target_type == "auto" and self.regression:
            target_type = "continuous"  # a regressor's columns are numbers unless told otherwise
        try:
            numbers = column.astype(np.float64)
        except (TypeError, ValueError):
            if target_type == "continuous":
                raise ValueError("a numeric task needs numbers, but a target column holds other values "
                                 "(target_type='classes' makes it a class task)") from None
            return True  # labels: ClassTargets checks them
        if target_type == "classes" and type_of_target(numbers) == "continuous":
            raise ValueError("target_type='classes' was given for a target column of non-integer numbers; "
                             "class labels must be whole numbers or labels")
        return target_kind(numbers, target_type) == "classes"

    def fit(self, y, classes=None):
        if classes is not None:
            raise ValueError("several target columns are fitted at once: classes cannot be given")
        self.one_d = np.ndim(y) == 1
        columns = self._columns(y)
        self.coders = [ClassTargets(self.class_weight).fit(column) if self._is_class_column(column, kind)
                       else RegressionTargets().fit(column.astype(np.float64))
                       for column, kind in zip(columns, self._column_types(y, len(columns)))]
        weights = np.ones(len(self.coders)) if self.task_weights is None else np.asarray(self.task_weights, float)
        if weights.shape != (len(self.coders),) or np.any(weights < 0):
            raise ValueError(f"task_weights must hold one non-negative weight per target column "
                             f"({len(self.coders)}), got {self.task_weights!r}")
        own = RegressionTargets if self.regression else ClassTargets
        if not any(isinstance(coder, own) for coder in self.coders):
            if not self.regression:
                # A classifier given only numbers: say so as scikit-learn does ("Unknown label type").
                check_classification_targets(np.asarray(columns[0], dtype=np.float64))
            raise ValueError(f"a {'regressor' if self.regression else 'classifier'} needs at least one "
                             f"{'numeric' if self.regression else 'class'} target column; "
                             f"target_type={self.target_type!r} leaves none")
        self.weights_ = weights
        self.n_outputs = [coder.n_outputs for coder in self.coders]
        return self

    def encode(self, y):
        encoded = {}
        for j, (coder, column) in enumerate(zip(self.coders, self._columns(y))):
            value = coder.encode(column.astype(np.float64) if isinstance(coder, RegressionTargets) else column)
            encoded[f"t{j}"] = value.reshape(len(value), -1) if isinstance(coder, RegressionTargets) else value
        return encoded

    def tensors(self, encoded, device, rows=None):
        return {key: torch.as_tensor(value if rows is None else value[rows], device=device,
                                     dtype=coder.dtype)
                for (key, value), coder in zip(encoded.items(), self.coders)}

    def loss(self, device):
        losses = []
        for coder in self.coders:
            loss = coder.loss(device)
            if isinstance(loss, nn.CrossEntropyLoss):
                loss.label_smoothing = float(self.label_smoothing)
            losses.append(loss)
        weights = self.weights_

        def total(outputs, targets):
            return sum(w * loss(output.float(), targets[f"t{j}"])
                       for j, (w, loss, output) in enumerate(zip(weights, losses, outputs)))
        return total

    def score(self, outputs, targets):
        return float(np.mean([coder.score(output.float(), targets[f"t{j}"])
                              for j, (coder, output) in enumerate(zip(self.coders, outputs))]))

    def baseline(self, targets):
        return float(np.mean([coder.baseline(targets[f"t{j}"]) for j, coder in enumerate(self.coders)]))

    def margin(self, baseline, n_rows):
        return float(np.mean([coder.margin(baseline, n_rows) for coder in self.coders]))

    def check_classes(self, classes):
        pass

    def output_transform(self, outputs):
        """Per task, its coder's transform of the network's output for it."""
        return [coder.output_transform(output) for coder, output in zip(self.coders, outputs)]

    def decode(self, outputs):
        """Per task, the decoded column (labels or values) of its transformed outputs."""
        return [coder.decode(out).reshape(len(out)) for coder, out in zip(self.coders, outputs)]

    def stratify(self, encoded, validation_fraction):
        first = encoded["t0"]
        return self.coders[0].stratify(first, validation_fraction)

    def is_classification(self, j):
        return isinstance(self.coders[j], ClassTargets)
