"""MultimodalNetClassifier and MultimodalNetRegressor: one network, trained end to end on an image + text table."""

from __future__ import annotations

from numbers import Real

import numpy as np
from sklearn.base import ClassifierMixin, RegressorMixin
from sklearn.metrics import r2_score
from sklearn.utils._param_validation import Interval, StrOptions

from .._targets import TaskTargets
from ._net_base import _BaseMultimodalNet

_CLASSIFIER_DEFAULTS = dict(dropout_doc="""
    dropout : float or "auto", default="auto"
        ``"auto"``: 0.5, or 0.1 with ``fusion="attention"``.""", learning_rate_doc="""
    learning_rate : float or "auto", default="auto"
        For the fusion and the heads. ``"auto"``: 1e-4, because at 1e-3 a
        head on pooled embeddings (scaled as :class:`TorchMLPClassifier`
        scales its inputs) fits its training rows within its first epoch or
        two, and the epoch early stopping keeps is a noisy snapshot. 3e-5
        where validation rows choose the head's epoch for good (early
        stopping on: from 1,000 rows at the defaults); only there, as a fixed
        epoch budget at that rate under-trains the head. 1e-3 with
        ``fusion="attention"``, whose transformer layer trains from scratch.""")
_REGRESSOR_DEFAULTS = dict(dropout_doc="""
    dropout : float or "auto", default=0.1
        ``"auto"``: as in :class:`MultimodalNetClassifier`.""", learning_rate_doc="""
    learning_rate : float or "auto", default=1e-3
        For the fusion and the heads (``"auto"``: as in
        :class:`MultimodalNetClassifier`).""")

_PARAMETERS = """
    modalities : list of (str, encoder, str) tuples
        Name, skmm encoder (:class:`~skmm.ImageEncoder` or
        :class:`~skmm.TextEncoder`, with every parameter they take: model,
        weights, device, batch_size, cache, on_error...) and the column it
        reads, as :class:`~skmm.ModalityFusion` takes them.
    fusion : {{"concat", "average", "weighted", "gated", "attention"}}, default="concat"
        ``"concat"``: the pooled modalities side by side (and a presence flag
        each). ``"average"`` / ``"weighted"`` / ``"gated"``: each modality
        projected by a learned linear map to ``fusion_width``, then averaged,
        averaged with learned weights, or averaged with weights a gate computes
        per row. ``"attention"``: one transformer layer over the text's tokens
        and the image's regions together (and a summary token it reads out),
        as the published MVSA leaders fuse.
    train_blocks : int, "all" or dict, default=1
        How many of each backbone's top blocks train with the fusion and the
        heads: 0 (only fusion and heads, on the frozen embeddings), k, or
        ``"all"`` (every block, meant for GPUs; a text model's token
        embeddings stay frozen); a dict gives it per
        modality name. The blocks are found as ``skmm.encoders.trunks``
        describes (CNN stages' blocks, transformer layers).
    fusion_width : int, default=256
        Width of the projected space of average / weighted / gated /
        attention fusion.
    hidden_layer_sizes : int or tuple of int, default=(256,)
        The MLP head of each task.{dropout_doc}
    optimizer : {{"adamw", "adam", "sgd"}}, default="adamw"{learning_rate_doc}
    backbone_learning_rate : float, default=1e-4
        For the whole network once the backbones' blocks train (pretrained:
        smaller steps; the fusion and heads start trained, see Notes).
    layer_decay : float in (0, 1], default=1.0
        Layer-wise learning-rate decay: a trained block with ``d`` trained
        blocks above it in its backbone learns at ``backbone_learning_rate *
        layer_decay ** d`` (lower layers hold more general features). With
        one block per backbone (the default ``train_blocks``) it changes
        nothing.
    weight_decay : float, default=0.01
    warmup : float, default=0.1
        Share of the fine-tuning steps over which the learning rates rise
        linearly; a cosine decay follows.
    batch_size : int, default=32
    probe_epochs : int, default=200
        Epochs of the first stage, the fusion and heads on the blocks as
        loaded (see Notes): trained as :class:`~skmm.TorchMLPClassifier`
        trains, at a constant ``learning_rate``, stopped early on the
        validation rows when there are some. Cheap: the blocks' outputs are
        computed once. (With ``fusion="attention"``, whose first stage runs
        the blocks, ``max_epochs``.)
    max_epochs : int, default=20
        Epochs of the second stage, where blocks train.
    early_stopping : bool or "auto", default="auto"
        Hold out ``validation_fraction`` of the rows (stratified on the first
        target column when it holds classes), stop when the validation loss has not improved by ``tol``
        for ``n_iter_no_change`` epochs, restore the best epoch. The validation
        rows also decide whether training the blocks helped (see Notes).
        ``"auto"``: on from 1,000 rows, as :class:`~skmm.TorchMLPClassifier`;
        below (from 100 rows), the split only decides whether the blocks
        help, and the network then trains again on every row.
    validation_fraction : float, default=0.1
    n_iter_no_change : int, default=5
    tol : float, default=1e-4
    augment : bool, default=False
        Train on augmented images (a random resized crop, a flip, a small
        rotation; training rows only). The trunk is frozen, so the views are
        computed once each, ``n_views - 1`` per image besides the original,
        and an epoch draws one view per row: the augmentation costs
        ``n_views - 1`` more trunk passes over the training images, once.
    n_views : int, default=4
    task_weights : array-like of shape (n_tasks,), optional
        Weights of the tasks' losses (default: equal).
    target_type : {{"auto", "classes", "continuous"}}, list or dict, default="auto"
        Whether a target column is a class task (cross-entropy) or a numeric
        one (squared error). ``"auto"``: for the classifier, a column of
        non-integer numbers is numeric and any other (labels, integers,
        whole-number floats such as counts or ratings) holds classes, as
        :func:`~sklearn.utils.multiclass.type_of_target` decides; for the
        regressor, every column is numeric. A list gives one type per column;
        a dict the types of some columns (the others ``"auto"``), keyed by
        column name when ``y`` is a DataFrame, else by position.
    random_state : int, RandomState instance or None, default=None
    device : str, default="auto"
        Where the network trains; predictions run in float64 there (on the
        CPU for MPS), so a row's does not depend on its batch.
    verbose : int, default=0
        1: a line per epoch (training and validation loss, validation score);
        2: also a progress bar over each epoch's batches."""

_ATTRIBUTES = """
    modalities_ : list of (str, encoder, str)
        The fitted encoders (clones).
    network_ : torch.nn.Module
        The trained part: each modality's top blocks, the fusion, the heads.
    blocks_trained_ : bool
        Whether the network keeps its trained blocks (False: they did not
        lower the validation loss, and the head trained on the frozen blocks
        was kept; always False with ``train_blocks=0``).
    n_iter_, best_epoch_ : int
    loss_curve_, validation_loss_curve_, validation_score_curve_ : list of float
    device_ : str
    n_features_in_ : int
    feature_names_in_ : ndarray of str"""

_NOTES = """
    Notes
    -----
    The frozen part of each backbone (everything below its first trained
    block) runs once per distinct item and is kept in skmm's embedding cache
    (keyed by the content, the model and the cut), so the folds and
    candidates of a grid search run it once. Saved models hold only the
    trained weights; the frozen parts reload from their named source.

    ``fit`` trains in two stages. First the fusion and the heads alone, at
    ``learning_rate`` for up to ``probe_epochs``, on what the blocks make of
    each row as they were loaded (computed once: as cheap as
    ``train_blocks=0``, and trained as :class:`~skmm.TorchMLPClassifier`
    trains its MLP). Then, where
    blocks train, the whole network from there at ``backbone_learning_rate``
    ("linear probing, then fine-tuning": the trained head sends no large,
    random gradients into pretrained blocks). The fine-tuned network is kept
    only if its validation loss is lower than the first stage's; else the
    first stage's is restored (``blocks_trained_``). Below 1,000 rows,
    ``early_stopping="auto"`` makes that choice on a validation split, then
    trains the network again from its first weights on every row, with the
    blocks' stage or without it (twice the training; each stage then stops on
    its training loss, since epochs chosen on under 100 rows cost more than
    they saved). With ``early_stopping=False`` the fine-tuned network is
    kept."""


class MultimodalNetClassifier(ClassifierMixin, _BaseMultimodalNet):
    __doc__ = f"""One network on an image + text table: backbone tops, fusion and MLP heads, trained together.

    Each modality's backbone is cut below its top ``train_blocks`` blocks; the
    frozen trunk runs once per item, the top blocks train (at
    ``backbone_learning_rate``) with the fusion and one head per target
    column (cross-entropy; a column of non-integer numbers, or one
    ``target_type`` declares ``"continuous"``, is a regression task, squared
    error), the losses summed with ``task_weights``.

    Parameters
    ----------{_PARAMETERS.format(**_CLASSIFIER_DEFAULTS)}
    class_weight : None, "balanced" or dict, default=None
    label_smoothing : float, default=0.0

    Attributes
    ----------
    classes_ : ndarray or list of ndarray
        The class labels (a list, one per class task, for several tasks).{_ATTRIBUTES}
{_NOTES}

    Examples
    --------
    >>> from skmm import ImageEncoder, MultimodalNetClassifier
    >>> from skmm.datasets import make_multimodal_classification
    >>> X, y = make_multimodal_classification(n_samples=60, image_size=32, random_state=0)
    >>> net = MultimodalNetClassifier(
    ...     [("image", ImageEncoder("timm:test_efficientnet", weights=None, device="cpu"), "image")],
    ...     max_epochs=3, random_state=0, device="cpu").fit(X, y)
    >>> net.predict_proba(X).shape
    (60, 3)
    """

    _parameter_constraints = {
        **_BaseMultimodalNet._parameter_constraints,
        "class_weight": [StrOptions({"balanced"}), dict, None],
        "label_smoothing": [Interval(Real, 0, 1, closed="left")],
    }

    def __init__(self, modalities, *, fusion="concat", train_blocks=1, fusion_width=256, hidden_layer_sizes=(256,),
                 dropout="auto", optimizer="adamw", learning_rate="auto", backbone_learning_rate=1e-4,
                 layer_decay=1.0, weight_decay=0.01, warmup=0.1, batch_size=32, probe_epochs=200, max_epochs=20,
                 early_stopping="auto", validation_fraction=0.1, n_iter_no_change=5, tol=1e-4, augment=False, n_views=4,
                 task_weights=None, target_type="auto", class_weight=None, label_smoothing=0.0, random_state=None,
                 device="auto", verbose=0):
        super().__init__(
            modalities, fusion=fusion, train_blocks=train_blocks, fusion_width=fusion_width,
            hidden_layer_sizes=hidden_layer_sizes, dropout=dropout, optimizer=optimizer, learning_rate=learning_rate,
            backbone_learning_rate=backbone_learning_rate, layer_decay=layer_decay, weight_decay=weight_decay,
            warmup=warmup,
            batch_size=batch_size, probe_epochs=probe_epochs, max_epochs=max_epochs, early_stopping=early_stopping,
            validation_fraction=validation_fraction, n_iter_no_change=n_iter_no_change, tol=tol, augment=augment,
            n_views=n_views, task_weights=task_weights, target_type=target_type, random_state=random_state,
            device=device, verbose=verbose)
        self.class_weight = class_weight
        self.label_smoothing = label_smoothing

    def _target_coder(self):
        return TaskTargets(regression=False, class_weight=self.class_weight, label_smoothing=self.label_smoothing,
                           task_weights=self.task_weights, target_type=self.target_type)

    def fit(self, X, y):
        super().fit(X, y)
        classes = [coder.classes_ for coder in self._targets.coders if hasattr(coder, "classes_")]
        self.classes_ = classes[0] if self._targets.one_d else classes
        return self

    fit.__doc__ = _BaseMultimodalNet.fit.__doc__

    def predict_proba(self, X):
        """Class probabilities: an array for one class task, a list of arrays (one per class task) for several.

        Parameters
        ----------
        X : pandas.DataFrame or dict of columns

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes), or list of such arrays
        """
        outputs = self._outputs(X)
        probabilities = [out for j, out in enumerate(outputs) if self._targets.is_classification(j)]
        return probabilities[0] if self._targets.one_d else probabilities

    def predict(self, X):
        """Predicted labels (and values, for numeric tasks): shape (n_samples,) or (n_samples, n_tasks).

        Parameters
        ----------
        X : pandas.DataFrame or dict of columns

        Returns
        -------
        y : ndarray
        """
        return _stacked(self._targets, self._predicted_columns(X))

    def score(self, X, y, sample_weight=None):
        """The mean over the tasks of each task's score: accuracy for a class column, R² for a numeric one.

        With one task, the accuracy, as for any scikit-learn classifier.

        Parameters
        ----------
        X : pandas.DataFrame or dict of columns
        y : array-like of shape (n_samples,) or (n_samples, n_tasks)
            The true labels (and values, for numeric tasks).
        sample_weight : array-like of shape (n_samples,), optional

        Returns
        -------
        score : float
        """
        if np.ndim(y) == 1:
            return super().score(X, y, sample_weight)
        predicted = self._predicted_columns(X)
        return _mean_task_score(self._targets, predicted, y, sample_weight)


class MultimodalNetRegressor(RegressorMixin, _BaseMultimodalNet):
    __doc__ = f"""One network on an image + text table, trained end to end for numeric targets (squared error).

    As :class:`MultimodalNetClassifier`, with a regression head per target
    column (targets standardised inside), or a class head for a column
    ``target_type`` declares ``"classes"``.

    Parameters
    ----------{_PARAMETERS.format(**_REGRESSOR_DEFAULTS)}

    Attributes
    ----------{_ATTRIBUTES}
{_NOTES}
    """

    # The parameters are exactly the shared ones: the base class's __init__ is this estimator's.

    def _target_coder(self):
        return TaskTargets(regression=True, task_weights=self.task_weights, target_type=self.target_type)

    def predict(self, X):
        """Predicted values (and labels, for class tasks): shape (n_samples,) or (n_samples, n_targets).

        Parameters
        ----------
        X : pandas.DataFrame or dict of columns

        Returns
        -------
        y : ndarray
        """
        return _stacked(self._targets, self._predicted_columns(X))

    def score(self, X, y, sample_weight=None):
        """R², averaged over the target columns; with class columns, the mean over the tasks of R² and accuracy.

        Without class columns, the score of any scikit-learn regressor
        (``r2_score``, the outputs' R² averaged uniformly).

        Parameters
        ----------
        X : pandas.DataFrame or dict of columns
        y : array-like of shape (n_samples,) or (n_samples, n_targets)
        sample_weight : array-like of shape (n_samples,), optional

        Returns
        -------
        score : float
        """
        self._check_fitted()
        if not any(self._targets.is_classification(j) for j in range(len(self._targets.coders))):
            return super().score(X, y, sample_weight)
        predicted = self._predicted_columns(X)
        return _mean_task_score(self._targets, predicted, y, sample_weight)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags


def _stacked(targets, columns):
    """One task's predictions, or the tasks' side by side (as objects where labels and numbers mix)."""
    if targets.one_d:
        return columns[0]
    mixed = len({column.dtype.kind for column in columns}) > 1
    return np.column_stack([c.astype(object) if mixed else c for c in columns])


def _mean_task_score(targets, predicted, y, sample_weight):
    """The mean over the tasks of each one's score: accuracy for class columns, R² for numeric ones."""
    truths = targets._columns(y)
    if len(truths) != len(predicted):
        raise ValueError(f"y has {len(truths)} columns; the network was fitted on {len(predicted)} target columns")
    scores = []
    for j, (column, truth) in enumerate(zip(predicted, truths)):
        if targets.is_classification(j):  # compared as objects: labels may be read as numbers or strings
            right = np.asarray(column, dtype=object) == np.asarray(truth, dtype=object)
            scores.append(np.average(right, weights=sample_weight))
        else:
            scores.append(r2_score(np.asarray(truth, dtype=np.float64), column, sample_weight=sample_weight))
    return float(np.mean(scores))
