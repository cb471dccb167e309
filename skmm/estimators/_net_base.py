"""What MultimodalNetClassifier and MultimodalNetRegressor share: fitting one network end to end on a table."""

from __future__ import annotations

from numbers import Integral, Real

import numpy as np
import torch
from sklearn.base import _fit_context, clone
from sklearn.utils._param_validation import Interval, StrOptions

from .._compat import network_architecture, upgrade_net_state
from .._composition import TriplesComposition
from .._training import TRAINING_CONSTRAINTS, selects_then_refits
from .._table import as_frame, present_mask, reject_rows_without_a_modality
from ._net_data import ModalityData, build_top, network_reads, run_trunk
from ._net_modules import FUSIONS, FusionLayer, MultimodalNet
from ._net_training import StagedTraining
from ._torch_base import TorchEstimatorBase


# learning_rate / dropout "auto", without and with attention fusion: at 1e-3 a head on pooled embeddings (at unit
# variance per feature on average, see FusionLayer) fits its training rows within an epoch or two (MVSA: the
# early-stopped head is a noisy snapshot of its first epoch), while attention's transformer layer, trained from
# scratch, barely moves at 1e-4 or under dropout 0.5.
_AUTO_HEAD = {"learning_rate": (1e-4, 1e-3), "dropout": (0.5, 0.1)}
# Where validation rows choose the head's epoch for good, a slower head: the epoch is chosen on a smoother curve
# (MVSA: docs/benchmarks.md, "The input's scale"); without them a fixed budget of epochs at 3e-5 under-trains.
_AUTO_HEAD_RATE_VALIDATED = 3e-5


class _BaseMultimodalNet(StagedTraining, TriplesComposition, TorchEstimatorBase):
    """See MultimodalNetClassifier for the parameters."""

    _triples = "modalities"
    _module_attribute = "network_"
    _device_bound = {"network_": "_network_weights"}
    _parameter_constraints = {
        **TRAINING_CONSTRAINTS,
        "dropout": [Interval(Real, 0, 1, closed="left"), StrOptions({"auto"})],
        "learning_rate": [Interval(Real, 0, None, closed="neither"), StrOptions({"auto"})],
        "modalities": [list],
        "fusion": [StrOptions(set(FUSIONS))],
        "train_blocks": [Interval(Integral, 0, None, closed="left"), StrOptions({"all"}), dict],
        "fusion_width": [Interval(Integral, 1, None, closed="left")],
        "backbone_learning_rate": [Interval(Real, 0, None, closed="left")],
        "layer_decay": [Interval(Real, 0, 1, closed="right")],
        "warmup": [Interval(Real, 0, 1, closed="left")],
        "probe_epochs": [Interval(Integral, 1, None, closed="left")],
        "augment": ["boolean"],
        "n_views": [Interval(Integral, 1, None, closed="left")],
        "task_weights": ["array-like", None],
        # Each value of a list or dict is checked against the target's columns in fit (TaskTargets).
        "target_type": [StrOptions({"auto", "classes", "continuous"}), list, dict],
    }

    def __init__(self, modalities, *, fusion="concat", train_blocks=1, fusion_width=256, hidden_layer_sizes=(256,),
                 dropout=0.1, optimizer="adamw", learning_rate=1e-3, backbone_learning_rate=1e-4, layer_decay=1.0,
                 weight_decay=0.01,
                 warmup=0.1, batch_size=32, probe_epochs=200, max_epochs=20, early_stopping="auto",
                 validation_fraction=0.1, n_iter_no_change=5, tol=1e-4, augment=False, n_views=4, task_weights=None,
                 target_type="auto", random_state=None, device="auto", verbose=0):
        self.modalities = modalities
        self.fusion = fusion
        self.train_blocks = train_blocks
        self.fusion_width = fusion_width
        self.hidden_layer_sizes = hidden_layer_sizes
        self.dropout = dropout
        self.optimizer = optimizer
        self.learning_rate = learning_rate
        self.backbone_learning_rate = backbone_learning_rate
        self.layer_decay = layer_decay
        self.weight_decay = weight_decay
        self.warmup = warmup
        self.batch_size = batch_size
        self.probe_epochs = probe_epochs
        self.max_epochs = max_epochs
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.tol = tol
        self.augment = augment
        self.n_views = n_views
        self.task_weights = task_weights
        self.target_type = target_type
        self.random_state = random_state
        self.device = device
        self.verbose = verbose

    # -- fitting -------------------------------------------------------------------
    @_fit_context(prefer_skip_nested_validation=False)  # the modalities' encoders are validated as they fit
    def fit(self, X, y):
        """Run each modality's frozen trunk once per item, then train the top blocks, fusion and heads.

        The heads train first on the blocks as loaded; the trained blocks are
        kept only where validation rows say they help. With
        ``early_stopping="auto"`` below 1,000 rows, that choice is made on a
        validation split and the network is then trained again on every row
        (see Notes of the class).

        Parameters
        ----------
        X : pandas.DataFrame or dict of columns
            The table: the modalities' columns (image paths, bytes, arrays; texts).
        y : array-like of shape (n_samples,) or (n_samples, n_tasks)
            One column per task.

        Returns
        -------
        self : object
        """
        frame, y = self._check_table(X, y, reset=True)
        targets = self._initialize_targets(y)
        self._initialize_run()
        data, tops = self._prepare(frame, fitting=True)
        self._initialize_module(tops)
        refit = (selects_then_refits(self.early_stopping, len(frame), self.validation_fraction)
                 and len(self._blocks_to_train()) > 0)  # the split's only choice below 1,000 rows: the blocks
        train, validation = self._split(targets, len(frame), hold_out=refit)
        validated = validation is not None and not refit  # after a refit every row is a training row
        self._head_rate = self._head_setting("learning_rate", validated=validated)
        if self.augment:
            self._add_views(frame, data, np.arange(len(frame)) if refit else train)
        if refit:
            self._train_again_on_every_row(data, targets, train, validation)
        else:
            self._train(data, targets, train, validation)
        held_out = validation if validated else np.arange(len(frame))
        self._finish_fit(list(self._batches(data, targets, held_out)), validated=validated)
        return self

    def _check_table(self, X, y, reset):
        frame = as_frame(X)
        if reset:
            self._remember_columns(frame)
        if len(frame) == 0:
            raise ValueError("X is empty: at least one row is required")
        if y is not None:
            y = y if hasattr(y, "iloc") else np.asarray(y)
            if len(y) != len(frame):
                raise ValueError(f"X has {len(frame)} rows but y has {len(y)}")
        return frame, y

    def _prepare(self, frame, fitting):
        """Per modality, the trunk outputs for the rows of ``frame``; when fitting, also the encoders and tops."""
        if fitting:
            self.modalities_, self._trunks = [], []
        masks = []
        for name, transformer, column in (self._checked_triples() if fitting else self.modalities_):
            if fitting and not network_reads(transformer, column):
                raise ValueError(
                    f"modality {name!r} is a {type(transformer).__name__} of {column!r}: the network trains image "
                    "and text backbones, so each modality must be an ImageEncoder or a TextEncoder of one column. "
                    "Leave this one out; a MultimodalStackingClassifier with default_stacking_members(modalities, "
                    "trained_network=True) stacks the network with members that read every modality")
            if column not in frame.columns:
                raise ValueError(f"modality {name!r} reads column {column!r}, which X does not have "
                                 f"(columns: {list(frame.columns)})")
            masks.append(present_mask(frame[column]))
        reject_rows_without_a_modality(masks, frame.index, [c for _, _, c in (self.modalities_ if not fitting
                                                                              else self.modalities)])
        data, tops = [], []
        for m, mask in enumerate(masks):
            if fitting:
                name, encoder, column = self.modalities[m]
                encoder = clone(encoder).fit(frame[column][mask])
                trunk, top, sequence = build_top(encoder, name, self.train_blocks, self.fusion)
                self.modalities_.append((name, encoder, column))
                self._trunks.append((trunk, sequence))
                tops.append(top)
            name, encoder, column = self.modalities_[m]
            trunk, sequence = self._trunks[m]
            outputs, problems = run_trunk(encoder, trunk, frame[column][mask]) if mask.any() else ([], {})
            if problems and encoder.on_error == "raise":
                raise encoder.encoding_error(problems, frame[column][mask].index, column)
            full = [None] * len(frame)
            for position, row in enumerate(np.flatnonzero(mask)):
                full[row] = outputs[position]
            present = np.array([value is not None for value in full])
            kind = "text" if sequence else "image"
            data.append(ModalityData(kind, sequence, present, [full]))
        reject_rows_without_a_modality([d.present for d in data], frame.index,
                                       [c for _, _, c in self.modalities_], after="could be read")
        if fitting:  # what an absent modality looks like in a batch, even where no row has it
            self._input_shapes = [next(a for a in d.views[0] if a is not None).shape[-1:] if d.sequence
                                  else next(a for a in d.views[0] if a is not None).shape for d in data]
        return data, tops

    def _add_views(self, frame, data, train):
        """``n_views - 1`` augmented views of the training rows' images, each computed once per item."""
        for (name, encoder, column), (trunk, _), modality in zip(self.modalities_, self._trunks, data):
            if modality.kind != "image" or not hasattr(trunk, "split"):
                continue
            rows = [r for r in train if modality.present[r]]
            for view in range(1, self.n_views):
                outputs, _ = run_trunk(encoder, trunk, frame[column].iloc[rows], view=view)
                extra = list(modality.views[0])
                for row, output in zip(rows, outputs):
                    if output is not None:
                        extra[row] = output
                modality.views.append(extra)

    def _initialize_module(self, tops):
        widths = [top.width for top in tops]
        dropout = self._head_setting("dropout")
        fusion = FusionLayer(self.fusion, widths, self.fusion_width, dropout, standardize="global",
                             adapts=[any(p.requires_grad for p in top.parameters()) for top in tops])
        sizes = self.hidden_layer_sizes
        sizes = (sizes,) if isinstance(sizes, Integral) else tuple(int(s) for s in sizes)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self._seed)
            self.network_ = MultimodalNet(tops, fusion, self._targets.n_outputs, sizes, dropout)
        self.network_.to(self.device_)
        # What rebuilds this network on unpickling, whatever the parameters are set to by then.
        self._architecture = {"widths": widths, "hidden": sizes, "fusion": self.fusion,
                              "fusion_width": self.fusion_width, "train_blocks": self.train_blocks,
                              "dropout": dropout, "standardize": fusion.standardize}

    def _head_setting(self, name, validated=False):
        """``learning_rate`` or ``dropout``, with "auto" resolved for this fusion (``validated``: whether
        validation rows choose the head's epoch for good)."""
        value = getattr(self, name)
        if value != "auto":
            return value
        if name == "learning_rate" and validated and self.fusion != "attention":
            return _AUTO_HEAD_RATE_VALIDATED
        return _AUTO_HEAD[name][self.fusion == "attention"]

    def _batches(self, data, targets, rows, rng=None):
        """``(inputs, targets)`` batches of ``rows``; with ``rng``, shuffled, each image row in a random view."""
        order = rows if rng is None else rng.permutation(rows)
        for start in range(0, len(order), self.batch_size):
            batch = order[start:start + self.batch_size]
            views = [rng.integers(0, len(d.views), len(batch)) if rng is not None else np.zeros(len(batch), dtype=int)
                     for d in data]
            yield (self._inputs(data, batch, views),
                   self._targets.tensors(targets, self.device_, batch) if targets is not None else None)

    def _inputs(self, data, batch, views):
        """The network's inputs for the rows ``batch``, modality ``m`` in its views ``views[m]``."""
        inputs = {"present": torch.as_tensor(np.column_stack([d.present[batch] for d in data]), device=self.device_)}
        for m, modality in enumerate(data):
            x, mask = modality.batch(batch, views[m], self.device_)
            if x is None:  # no row of the batch has it: zeros of the trunk's shape
                x, mask = self._absent_like(m, modality, len(batch))
            inputs[f"x{m}"] = x
            if mask is not None:
                inputs[f"mask{m}"] = mask
        return inputs

    def _absent_like(self, m, modality, n):
        shown = next((a for a in modality.views[0] if a is not None), None)
        shape = tuple(self._input_shapes[m]) if shown is None else (shown.shape[-1:] if modality.sequence
                                                                   else shown.shape)
        if modality.sequence:
            return (torch.zeros((n, 1, *shape), device=self.device_),
                    torch.zeros((n, 1), dtype=torch.long, device=self.device_))
        return torch.zeros((n, *shape), device=self.device_), None

    # -- predicting -----------------------------------------------------------------
    def _outputs(self, X):
        """Per task, the network's outputs for the rows of ``X`` (numpy, float64)."""
        self._check_fitted()
        frame, _ = self._check_table(X, None, reset=False)
        data, _ = self._prepare(frame, fitting=False)
        return self._forward_float64(inputs for inputs, _ in self._batches(data, None, np.arange(len(frame))))

    def _predicted_columns(self, X):
        """Per task, the decoded predictions (labels or values) for the rows of ``X``."""
        return self._targets.decode(self._outputs(X))

    # -- persistence: only the trained weights; the frozen parts reload from their names --------
    def _upgraded_state(self, state):
        return upgrade_net_state(super()._upgraded_state(state))

    def _load_device_bound(self, saved):
        if "network_" not in saved:
            return
        built = network_architecture(self._architecture)
        tops = [build_top(encoder, name, built["train_blocks"], built["fusion"])[1]
                for name, encoder, _ in self.modalities_]
        fusion = FusionLayer(built["fusion"], built["widths"], built["fusion_width"], built["dropout"],
                             built["standardize"])
        self._restore_module(MultimodalNet(tops, fusion, self._targets.n_outputs, built["hidden"], built["dropout"]),
                             saved["network_"])

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        # The input is a table of images and texts, not a numeric matrix: sklearn's data-driven checks do not
        # apply (tests/test_multimodal_net.py runs the API checks and tests the same properties on real items).
        tags.input_tags.two_d_array = False
        tags.input_tags.string = True
        return tags

