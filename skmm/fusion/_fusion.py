"""ModalityFusion: encode several columns of a table and fuse the modalities."""

from __future__ import annotations

from numbers import Integral

import numpy as np
from sklearn.base import TransformerMixin, _fit_context
from sklearn.preprocessing import normalize as l2_normalize
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted

from .._compat import upgrade_fusion_state
from .._composition import TriplesComposition
from .._defaults import FUSION_METHODS
from .._table import as_frame, reject_rows_without_a_modality
from ..encoders import embedding_encoder
from ._alignment import TargetAlignment, fit_common_space, learn_modality_weights
from ._blocks import (block_spread, check_target_given, check_weights, concatenate, encode_modalities, expand,
                      read_modalities, weighted_mean)
from ._gating import ModalityGate

ALIGNMENTS = ("auto", "supervised", "cca", "pca")


class ModalityFusion(TransformerMixin, TriplesComposition):
    """Encode the modality columns of a table and fuse them into one feature matrix.

    Like :class:`~sklearn.compose.ColumnTransformer`, it is built from
    ``(name, transformer, column)`` triples; any scikit-learn transformer may
    stand in for an encoder (a TF-IDF pipeline for text, say). Unlike it, it
    knows that the blocks are modalities to fuse:

    - ``"concat"``: the blocks side by side;
    - ``"average"``: the mean of the blocks in one aligned space;
    - ``"weighted"``: a weighted mean, with ``weights`` or, without them,
      weights learned from ``y``;
    - ``"gated"``: a weighted mean whose weights a softmax gate learns per
      row from ``y``, so each row can lean on the modality informative for it.

    Scale: each embedding block is L2-normalised per row (``normalize``),
    then every block is centred on its training mean at unit total variance
    (a block of fewer than 64 columns, such as a few numbers, beside a wider
    one, at ``sqrt(width / 64)``: each column weighs like one of a 64-column
    block; narrow blocks alone are weighed against the widest of them);
    the output of average, weighted and gated fusion is standardised per
    column. Default-regularised estimators fit both well (see the user guide).

    Alignment: average, weighted and gated fusion need one space whose axes
    mean the same thing in every modality. ``"supervised"``: per modality, a
    ridge regression onto the target (one-hot classes, standardised numbers),
    so coordinate j is each modality's evidence for class j; on the rows
    ``fit_transform`` sees it is cross-fitted (5 folds), as
    :class:`~sklearn.preprocessing.TargetEncoder` does, so
    ``fit(X, y).transform(X)`` differs from ``fit_transform(X, y)``.
    ``"cca"`` (two modalities, unsupervised): a regularised CCA; an error for
    another number of modalities. ``"pca"``: each block by its own PCA.
    ``"auto"``: supervised when ``fit`` gets ``y``, else CCA for two
    modalities and PCA for any other number.

    Missing modalities: a None / NaN value, or an item that an skmm encoder
    with ``on_error="zero"`` / ``"nan"`` cannot read, is absent. Average,
    weighted and gated fusion use the modalities present in the row;
    concatenation fills the block with its training mean and, when values
    were missing in ``fit``, adds a presence column per modality. A row with
    no modality at all is an error naming it.

    Parameters
    ----------
    transformers : list of (str, transformer, str or list of str) tuples
        Name, transformer (or ``"drop"``) and the column (or list of columns)
        it reads.
    method : {"concat", "average", "weighted", "gated"}, default="concat"
        How to fuse the modality blocks.
    weights : dict or sequence of float, optional
        Per-modality weights for ``method="weighted"`` (by name, or in the
        order of ``transformers``; missing names weigh 1). Without them,
        weighted fusion learns the weights from ``y``: the non-negative
        weights, summing to 1, with which the average of each modality's
        cross-validated prediction of ``y`` fits ``y`` best (``weights_``).
    n_components : int, optional
        Width of the common space of ``"cca"`` / ``"pca"`` alignment. Default:
        the smallest block width (no projection when all widths are equal),
        capped by the number of training rows. The supervised space has one
        column per target column (class).
    alignment : {"auto", "supervised", "cca", "pca"}, default="auto"
        How average / weighted / gated fusion maps the blocks into one space.
    normalize : bool or "auto", default="auto"
        L2-normalise each modality block per row. ``"auto"``: the blocks of
        skmm's embedding encoders (:class:`~skmm.ImageEncoder`,
        :class:`~skmm.TextEncoder`, also as a pipeline's last step), whose
        direction is their meaning; any other transformer's block (numbers
        and categories, TF-IDF...) is left as it comes.
    add_indicator : bool or "auto", default="auto"
        For concatenation, add a presence column per modality: ``"auto"``
        does so when values were missing during ``fit``.
    target_type : {"auto", "continuous", "classes"}, default="auto"
        What ``y`` is, for what is learned from it: ``"auto"`` follows
        :func:`~sklearn.utils.multiclass.type_of_target` (as
        :class:`~sklearn.preprocessing.TargetEncoder` does), which takes whole
        numbers (counts, ratings, ages) for classes: say ``"continuous"`` then.

    Attributes
    ----------
    transformers_ : list of (str, transformer, column) tuples
        The fitted transformers (clones of the given ones).
    named_transformers_ : dict
        Fitted transformers by name.
    alignment_ : TargetAlignment, CCAAlignment or None
        The fitted supervised or CCA alignment.
    projections_ : dict
        Per-modality fitted PCA (``"pca"`` alignment).
    n_components_ : int
        Width of each block in the common space (average / weighted / gated).
    weights_ : ndarray of shape (n_modalities,)
        The modality weights used (given, learned, or equal), in the order
        of ``transformers_``; ``modality_weights_`` gives them by name.
    gate_ : ModalityGate or None
        The learned gate (``method="gated"``): ``gate_.weights(blocks, present)``
        gives each row's modality weights.
    output_mean_, output_scale_ : ndarray or None
        The standardisation of the fused output (None for concatenation).
    indicator_ : bool
        Whether presence columns are added.
    block_widths_ : dict
        Per modality, the width of its block as its transformer outputs it.
    block_means_, block_scales_ : dict
        Per modality, the training mean and spread of its (normalised) block.
    fill_values_ : dict
        Per modality, the (scaled) block mean that stands in for a missing
        value in concatenation.
    n_features_in_ : int
        Number of columns seen in ``fit``.
    feature_names_in_ : ndarray of str
        Column names seen in ``fit``.

    See Also
    --------
    make_fusion : build a ModalityFusion without naming the transformers.
    skmm.make_late_fusion : late (model) fusion.

    Examples
    --------
    >>> from sklearn.feature_extraction.text import TfidfVectorizer
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.decomposition import TruncatedSVD
    >>> from sklearn.linear_model import LogisticRegression
    >>> from skmm import ImageEncoder, ModalityFusion
    >>> from skmm.datasets import make_multimodal_classification
    >>> X, y = make_multimodal_classification(n_samples=40, image_size=32, random_state=0)
    >>> fusion = ModalityFusion([
    ...     ("image", ImageEncoder("timm:test_efficientnet", weights=None, device="cpu"), "image"),
    ...     ("text", make_pipeline(TfidfVectorizer(), TruncatedSVD(8, random_state=0)), "text"),
    ... ], method="average")
    >>> model = make_pipeline(fusion, LogisticRegression()).fit(X, y)
    >>> fusion.transform(X).shape  # supervised alignment: one column per class
    (40, 3)
    >>> fusion.set_params(method="concat").fit_transform(X, y).shape
    (40, 264)
    """

    _parameter_constraints = {
        "transformers": [list],
        "method": [StrOptions(set(FUSION_METHODS))],
        "weights": [dict, "array-like", None],
        "n_components": [Interval(Integral, 1, None, closed="left"), None],
        "alignment": [StrOptions(set(ALIGNMENTS))],
        "normalize": ["boolean", StrOptions({"auto"})],
        "add_indicator": [StrOptions({"auto"}), "boolean"],
        "target_type": [StrOptions({"auto", "continuous", "classes"})],
    }

    def __init__(self, transformers, *, method="concat", weights=None, n_components=None, alignment="auto",
                 normalize="auto", add_indicator="auto", target_type="auto"):
        self.transformers = transformers
        self.method = method
        self.weights = weights
        self.n_components = n_components
        self.alignment = alignment
        self.normalize = normalize
        self.add_indicator = add_indicator
        self.target_type = target_type

    # -- validation --------------------------------------------------------
    def _active_transformers(self):
        active = [t for t in self._checked_triples() if not (isinstance(t[1], str) and t[1] == "drop")]
        if not active:
            raise ValueError("every transformer is 'drop': nothing to fuse")
        for name, transformer, _ in active:
            if not (hasattr(transformer, "fit") and hasattr(transformer, "transform")):
                raise TypeError(f"transformer {name!r} must implement fit and transform, got {transformer!r}")
        return active

    def _encode(self, X, triples, fitting, y=None):
        """Each modality's block (present rows, scaled) and presence mask, and the transformers used."""
        frame = as_frame(X)
        if fitting:
            self._remember_columns(frame)
        columns, masks = read_modalities(frame, triples, fitting)
        blocks, masks, fitted = encode_modalities(triples, columns, masks, fitting, y)
        widest = max(block.shape[1] for block in blocks) if fitting else None  # the scale rule's reference
        for position, (name, transformer, _) in enumerate(fitted):
            block = self._scale(blocks[position], transformer)
            if fitting:
                self.block_means_[name], self.block_scales_[name] = block_spread(block, widest)
            blocks[position] = self._center_and_scale(name, block)
        reject_rows_without_a_modality(masks, frame.index, [column for _, _, column in triples], after="could be read")
        return blocks, masks, fitted

    # -- fitting and transforming ------------------------------------------
    def fit(self, X, y=None):
        """Fit every modality's transformer and the fusion.

        Parameters
        ----------
        X : pandas.DataFrame or dict of columns
        y : array-like of shape (n_samples,) or (n_samples, n_outputs), optional
            The target: passed to the transformers (an encoder ignores it);
            needed by supervised alignment (the default when given), by
            weighted fusion without ``weights`` and by gated fusion.

        Returns
        -------
        self : object
        """
        self.fit_transform(X, y)
        return self

    @_fit_context(prefer_skip_nested_validation=False)  # the transformers are validated when they are fitted
    def fit_transform(self, X, y=None):
        """Fit, then return the fused features of ``X`` (encoding each input once).

        With supervised alignment the training rows' evidence is cross-fitted
        (see the class description), so this differs from ``fit(X, y).transform(X)``.

        Parameters
        ----------
        X : pandas.DataFrame or dict of columns
        y : array-like of shape (n_samples,) or (n_samples, n_outputs), optional
            The target, as for :meth:`fit`.

        Returns
        -------
        features : ndarray of shape (n_samples, n_features_out)
        """
        check_target_given(self.method, self.weights, self.alignment, y)  # before any encoding is spent
        self.block_means_, self.block_scales_ = {}, {}
        blocks, masks, self.transformers_ = self._encode(X, self._active_transformers(), fitting=True, y=y)
        names = [name for name, _, _ in self.transformers_]
        self.block_widths_ = {name: block.shape[1] for name, block in zip(names, blocks)}
        self.indicator_ = bool(self.add_indicator is True or (
            self.add_indicator == "auto" and not all(m.all() for m in masks)))
        self.fill_values_ = {name: block.mean(axis=0) for name, block in zip(names, blocks)}
        self.alignment_, self.projections_, self.gate_ = None, {}, None
        if hasattr(self, "n_components_"):
            del self.n_components_  # concatenation has no common space
        self.output_mean_ = self.output_scale_ = None
        self.weights_ = np.ones(len(names))
        if self.method == "concat":
            return self._concat(blocks, masks)
        if y is not None:
            y = np.asarray(y)
        space = self._fit_common_space(blocks, masks, y)
        if self.method == "weighted":
            if self.weights is not None:
                self.weights_ = check_weights(self.weights, names)
            else:
                self.weights_ = learn_modality_weights(space, masks, y, self.target_type)
        if self.method == "gated":
            self.gate_ = ModalityGate().fit(space, np.column_stack(masks), y, self.target_type)
        fused = self._combine(space, masks)
        self.output_mean_ = fused.mean(axis=0)
        scale = fused.std(axis=0)
        self.output_scale_ = np.where(scale > 1e-12, scale, 1.0).astype(np.float32)
        return self._standardize(fused)

    def transform(self, X):
        """Encode and fuse ``X``.

        Parameters
        ----------
        X : pandas.DataFrame or dict of columns

        Returns
        -------
        features : ndarray of shape (n_samples, n_features_out)
        """
        check_is_fitted(self, "transformers_")
        blocks, masks, _ = self._encode(X, self.transformers_, fitting=False)
        if self.method == "concat":
            return self._concat(blocks, masks)
        return self._standardize(self._combine(self._to_common_space(blocks, masks), masks))

    def _to_common_space(self, blocks, masks):
        """Each modality's (scaled) block in the fitted common space, full height, zeros where absent."""
        return [expand(self._project(name, block), mask) if mask.any()
                else np.zeros((len(mask), self.n_components_), dtype=np.float32)
                for (name, _, _), block, mask in zip(self.transformers_, blocks, masks)]

    def _fit_common_space(self, blocks, masks, y):
        """Fit the alignment; return each modality's training rows in the common space (full height)."""
        names = list(self.block_widths_)
        alignment = self.alignment
        if alignment == "auto":  # CCA pairs two spaces: for another number of modalities, each its own PCA
            alignment = "supervised" if y is not None else ("cca" if len(names) == 2 else "pca")
        elif alignment == "cca" and len(names) != 2:
            raise ValueError(f"alignment='cca' aligns two modalities, and this fusion has {len(names)} ({names}): "
                             "use alignment='supervised' (with y) or 'pca'")
        self.alignment_, self.projections_, self.n_components_, cross_fitted = fit_common_space(
            names, blocks, masks, y, alignment=alignment, n_components=self.n_components, target_type=self.target_type)
        if cross_fitted is not None:  # supervised: the training rows' evidence, each from a model blind to it
            return [expand(block, mask) for block, mask in zip(cross_fitted, masks)]
        return self._to_common_space(blocks, masks)

    def _scale(self, block, transformer):
        """An embedding block is L2-normalised per row once, as it leaves its encoder (see ``normalize``)."""
        return l2_normalize(block) if self._normalizes(transformer) and block.size else block

    def _normalizes(self, transformer):
        if self.normalize != "auto":
            return bool(self.normalize)
        return embedding_encoder(transformer) is not None

    def _center_and_scale(self, name, block):
        """A block centred on its training mean, at its total spread (see :func:`._blocks.block_spread`).

        Embeddings often sit in a narrow cone (unit-norm rows, a tiny spread around a common direction):
        centred and scaled, every modality's variation reaches the fusion at a usable scale, and the relative
        variance of its directions, where the signal usually is, is kept. A block without training statistics
        (a model saved before there were any) passes as it is.
        """
        if name not in self.block_means_ or not block.size:
            return block
        return ((block - self.block_means_[name]) / self.block_scales_[name]).astype(np.float32)

    def _project(self, name, block):
        """Map a (scaled) block of present rows into the common space of average / weighted / gated fusion."""
        if isinstance(self.alignment_, TargetAlignment):
            which = [n for n, _, _ in self.transformers_].index(name)
            return self.alignment_.transform(block, which).astype(np.float32)
        if self.alignment_ is not None:
            which = [n for n, _, _ in self.transformers_].index(name)
            block = self.alignment_.transform(block, which)
        elif name in self.projections_:
            block = self.projections_[name].transform(block)
        if self.alignment_ is not None or name in self.projections_:
            block = self._scale(block, self.named_transformers_[name])  # unsupervised spaces: normalised again
        return block.astype(np.float32, copy=False)

    def _concat(self, blocks, masks):
        return concatenate(blocks, masks, [self.block_widths_[name] for name, _, _ in self.transformers_],
                           [self.fill_values_[name] for name, _, _ in self.transformers_], self.indicator_)

    def _combine(self, space, masks):
        """Average (weighted, or gated per row) of the common-space blocks over the modalities present."""
        if self.method == "gated":
            return self.gate_.fuse(space, np.column_stack(masks))
        return weighted_mean(space, masks, self.weights_)

    def _standardize(self, fused):
        if self.output_mean_ is None:  # saved without output statistics (see skmm._compat): passed as it is
            return fused
        return ((fused - self.output_mean_) / self.output_scale_).astype(np.float32)

    @property
    def modality_weights_(self):
        """``weights_`` by modality name: ``{name: weight}``."""
        check_is_fitted(self, "weights_")
        return {name: float(weight) for (name, _, _), weight in zip(self.transformers_, self.weights_)}

    @property
    def named_transformers_(self):
        check_is_fitted(self, "transformers_")
        return {name: fitted for name, fitted, _ in self.transformers_}

    def get_feature_names_out(self, input_features=None):
        """Names of the fused features: ``"<modality>__<feature>"`` for concat, ``fused<i>`` otherwise."""
        check_is_fitted(self, "transformers_")
        if self.method != "concat":
            return np.asarray([f"fused{i}" for i in range(self.n_components_)], dtype=object)
        names = []
        for name, fitted, _ in self.transformers_:
            if hasattr(fitted, "get_feature_names_out"):
                features = fitted.get_feature_names_out()
            else:  # e.g. a FunctionTransformer without feature_names_out: numbered, as sklearn does
                features = [f"x{i}" for i in range(self.block_widths_[name])]
            names += [f"{name}__{feature}" for feature in features]
        if self.indicator_:
            names += [f"{name}__present" for name, _, _ in self.transformers_]
        return np.asarray(names, dtype=object)

    def __setstate__(self, state):
        super().__setstate__(upgrade_fusion_state(state))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        tags.input_tags.string = True
        return tags


ModalityFusion.__module__ = "skmm.fusion"  # saved files name the public path, wherever the code lives
