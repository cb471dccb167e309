"""ModalityFusion: encode several columns of a table and fuse the modalities."""

from __future__ import annotations

import numbers
import warnings

import numpy as np
import pandas as pd
from scipy import sparse
from sklearn.base import TransformerMixin, clone
from sklearn.preprocessing import normalize as l2_normalize
from sklearn.utils.metaestimators import _BaseComposition
from sklearn.utils.validation import check_is_fitted

from ._alignment import CCAAlignment, PCAProjection, fit_memoized
from ._gating import ModalityGate
from ._inputs import is_missing

METHODS = ("concat", "average", "weighted", "gated")
ALIGNMENTS = ("cca", "pca")


def _as_frame(X):
    if isinstance(X, pd.DataFrame):
        return X
    if isinstance(X, dict):
        lengths = {name: len(values) for name, values in X.items()}
        if len(set(lengths.values())) > 1:
            raise ValueError(f"the columns of X have different lengths: {lengths}")
        return pd.DataFrame({name: list(values) for name, values in X.items()})
    if isinstance(X, np.ndarray) and X.ndim == 2:
        return pd.DataFrame(X)
    raise TypeError(
        f"X must be a pandas DataFrame or a dict of columns, got {type(X).__name__}"
    )


def _present_mask(column):
    """Rows where a single-column modality has a value (not None / NaN)."""
    if isinstance(column, pd.DataFrame):
        return np.ones(len(column), dtype=bool)
    return np.fromiter((not is_missing(v) for v in column), dtype=bool, count=len(column))


def _dense(Z):
    Z = Z.toarray() if sparse.issparse(Z) else np.asarray(Z)
    return Z.astype(np.float32, copy=False) if Z.dtype != np.float64 else Z.astype(np.float32)


class ModalityFusion(TransformerMixin, _BaseComposition):
    """Encode the modality columns of a table and fuse them into one feature matrix.

    Like :class:`~sklearn.compose.ColumnTransformer`, it is built from
    ``(name, transformer, column)`` triples; any scikit-learn transformer may
    stand in for an encoder (a TF-IDF pipeline for text, say). Unlike it, it
    knows that the blocks are modalities to fuse:

    - ``"concat"``: the blocks side by side;
    - ``"average"``: the element-wise mean of the blocks;
    - ``"weighted"``: a weighted sum of the blocks, with ``weights``;
    - ``"gated"``: a weighted sum whose weights are learned per row: a
      softmax gate over the modalities, computed from the row's blocks and
      trained in ``fit`` on ``y`` (so ``fit`` needs ``y``), lets each row lean
      on the modality that is informative for it.

    Each block is L2-normalised per row (``normalize=True``) so that no
    modality dominates by scale. Average and weighted fusion need the blocks
    in one space of one width, with axes that *mean the same thing* in every
    modality: adding coordinate j of an image space to an unrelated
    coordinate j of a text space makes a single classifier weight serve two
    meanings. So, for two modalities, ``alignment="cca"`` (default) learns a
    regularised canonical correlation analysis in ``fit`` (unsupervised: no
    label leaks in): coordinate j of both projected blocks is the j-th pair of
    maximally correlated directions, and their average adds agreeing
    evidence. ``alignment="pca"`` (and any number of modalities other than
    two) projects each block by its own PCA instead: cheaper, unaligned.
    Projected blocks are normalised again before they are combined.

    Missing modalities: a row whose value is None or NaN in a modality's
    column is not sent to that encoder. Average and weighted fusion
    renormalise the weights over the modalities present in the row;
    concatenation fills the missing block with that block's mean over the
    training rows (a model trained on complete rows then sees the average
    contribution of the absent modality, not a shift of every decision) and,
    when any value was missing during ``fit`` (or ``add_indicator=True``),
    adds a 0/1 presence column per modality.

    Parameters
    ----------
    transformers : list of (str, transformer, str or list of str) tuples
        Name, transformer (or ``"drop"``) and the column (or list of columns)
        it reads.
    method : {"concat", "average", "weighted", "gated"}, default="concat"
        How to fuse the modality blocks. ``"gated"`` learns its gate from
        ``y`` (class labels or continuous values) jointly with a linear head
        that is then dropped: a supervised transformer, like
        :class:`~sklearn.discriminant_analysis.LinearDiscriminantAnalysis`.
    weights : dict or sequence of float, optional
        Per-modality weights for ``method="weighted"`` (by name, or in the
        order of ``transformers``). Missing names weigh 1.
    n_components : int, optional
        Width of the common space for average / weighted fusion. Default:
        the smallest block width (no projection when all widths are equal).
        It is capped at the number of training rows (PCA cannot learn more
        components), with a warning when it was set explicitly.
    alignment : {"cca", "pca"}, default="cca"
        How average / weighted fusion maps the blocks into one space (see
        above). CCA is fitted on the rows that have both modalities.
    normalize : bool, default=True
        L2-normalise each modality block per row.
    add_indicator : bool or "auto", default="auto"
        For concatenation, add a presence column per modality: ``"auto"``
        does so when values were missing during ``fit``.

    Attributes
    ----------
    transformers_ : list of (str, transformer, column) tuples
        The fitted transformers (clones of the given ones).
    named_transformers_ : dict
        Fitted transformers by name.
    alignment_ : CCAAlignment or None
        The fitted CCA (average / weighted fusion of two modalities, ``alignment="cca"``).
    projections_ : dict
        Per-modality fitted PCA (average / weighted fusion without CCA).
    n_components_ : int
        Width of each block in the fused space (average / weighted / gated).
    gate_ : object or None
        The learned gate (``method="gated"``): ``gate_.weights(blocks, present)``
        gives each row's modality weights.
    indicator_ : bool
        Whether presence columns are added.
    block_widths_ : dict
        Per modality, the width of its block as its transformer outputs it.
    fill_values_ : dict
        Per modality, the (normalised) block mean that stands in for a
        missing value in concatenation.
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
    ... ], method="concat")
    >>> model = make_pipeline(fusion, LogisticRegression()).fit(X, y)
    >>> fusion.transform(X).shape
    (40, 264)
    """

    def __init__(self, transformers, *, method="concat", weights=None, n_components=None, alignment="cca",
                 normalize=True, add_indicator="auto"):
        self.transformers = transformers
        self.method = method
        self.weights = weights
        self.n_components = n_components
        self.alignment = alignment
        self.normalize = normalize
        self.add_indicator = add_indicator

    # _BaseComposition's nested get_params / set_params ("image__batch_size")
    @property
    def _transformers(self):
        return [(name, transformer) for name, transformer, _ in self.transformers]

    @_transformers.setter
    def _transformers(self, value):
        self.transformers = [(name, transformer, column) for (name, transformer), (_, _, column)
                             in zip(value, self.transformers)]

    def get_params(self, deep=True):
        return self._get_params("_transformers", deep=deep)

    def set_params(self, **params):
        self._set_params("_transformers", **params)
        return self

    # -- validation --------------------------------------------------------
    def _validate(self):
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {self.method!r}")
        if not self.transformers or any(len(t) != 3 for t in self.transformers):
            raise ValueError("transformers must be a non-empty list of (name, transformer, column) triples")
        names = [name for name, _, _ in self.transformers]
        self._validate_names(names)
        active = [t for t in self.transformers if not (isinstance(t[1], str) and t[1] == "drop")]
        if not active:
            raise ValueError("every transformer is 'drop': nothing to fuse")
        for name, transformer, _ in active:
            if not (hasattr(transformer, "fit") and hasattr(transformer, "transform")):
                raise TypeError(f"transformer {name!r} must implement fit and transform, got {transformer!r}")
        if self.n_components is not None and (
            not isinstance(self.n_components, numbers.Integral) or self.n_components < 1
        ):
            raise ValueError(f"n_components must be None or a positive integer, got {self.n_components!r}")
        if self.alignment not in ALIGNMENTS:
            raise ValueError(f"alignment must be one of {ALIGNMENTS}, got {self.alignment!r}")
        if self.add_indicator not in ("auto", True, False):
            raise ValueError(f"add_indicator must be 'auto', True or False, got {self.add_indicator!r}")
        return active

    def _modality_weights(self, names):
        if self.method == "average" or self.weights is None:
            return np.ones(len(names))
        if isinstance(self.weights, dict):
            unknown = set(self.weights) - set(names)
            if unknown:
                raise ValueError(f"weights name unknown modalities {sorted(unknown)}; modalities are {names}")
            weights = np.array([self.weights.get(name, 1.0) for name in names], dtype=float)
        else:
            weights = np.asarray(self.weights, dtype=float)
            if weights.shape != (len(names),):
                raise ValueError(f"weights must have one value per modality ({len(names)}), got {self.weights!r}")
        if np.any(weights < 0) or not np.any(weights > 0) or not np.all(np.isfinite(weights)):
            raise ValueError(f"weights must be finite, non-negative and not all zero, got {self.weights!r}")
        return weights

    def _columns(self, X, reset):
        frame = _as_frame(X)
        if reset:
            self.n_features_in_ = frame.shape[1]
            if all(isinstance(c, str) for c in frame.columns):
                self.feature_names_in_ = np.asarray(frame.columns, dtype=object)
        if len(frame) == 0:
            raise ValueError("X is empty: at least one row is required")
        blocks = []
        for name, _, column in self.transformers_ if not reset else self._active:
            wanted = column if isinstance(column, list) else [column]
            absent = [c for c in wanted if c not in frame.columns]
            if absent:
                raise ValueError(f"modality {name!r} reads column(s) {absent}, which X does not have "
                                 f"(columns: {list(frame.columns)})")
            blocks.append(frame[column])
        return frame, blocks

    # -- fitting and transforming ------------------------------------------
    def fit(self, X, y=None):
        """Fit every modality's transformer and the fusion.

        Parameters
        ----------
        X : pandas.DataFrame or dict of columns
        y : array-like of shape (n_samples,), optional
            Passed to the transformers (an encoder ignores it).

        Returns
        -------
        self : object
        """
        self.fit_transform(X, y)
        return self

    def fit_transform(self, X, y=None):
        """Fit, then return the fused features of ``X`` (encoding each input once)."""
        self._active = self._validate()
        _, columns = self._columns(X, reset=True)
        self.transformers_ = []
        blocks, masks = [], []
        for (name, transformer, column), values in zip(self._active, columns):
            mask = _present_mask(values)
            if not mask.any():
                raise ValueError(f"modality {name!r} (column {column!r}) has no value in any row")
            fitted = clone(transformer)
            present = values[mask]
            y_present = None if y is None else np.asarray(y)[mask]
            block = self._scale(_dense(fitted.fit_transform(present, y_present)))
            self.transformers_.append((name, fitted, column))
            blocks.append(block)
            masks.append(mask)
        self.block_widths_ = {name: block.shape[1] for (name, _, _), block in zip(self.transformers_, blocks)}
        self.weights_ = self._modality_weights([name for name, _, _ in self.transformers_])
        self.indicator_ = bool(self.add_indicator is True or (
            self.add_indicator == "auto" and not all(m.all() for m in masks)))
        self._fit_projections(blocks, masks)
        self.fill_values_ = {name: block.mean(axis=0)
                             for (name, _, _), block in zip(self.transformers_, blocks)}
        self.gate_ = None
        if self.method == "gated":
            if y is None:
                raise ValueError("method='gated' learns its gate from the target: fit needs y")
            self.gate_ = ModalityGate().fit(*self._common_space(blocks, masks), np.asarray(y))
        del self._active
        return self._fuse(blocks, masks)

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
        _, columns = self._columns(X, reset=False)
        blocks, masks = [], []
        for (name, fitted, column), values in zip(self.transformers_, columns):
            mask = _present_mask(values)
            block = self._scale(_dense(fitted.transform(values[mask]))) if mask.any() else None
            blocks.append(block)
            masks.append(mask)
        return self._fuse(blocks, masks)

    def _fit_projections(self, blocks, masks):
        self.projections_ = {}
        self.alignment_ = None
        if self.method == "concat":
            return
        widths = [block.shape[1] for block in blocks]
        target = self.n_components or min(widths)
        use_cca = self.alignment == "cca" and len(blocks) == 2
        if use_cca:
            both = masks[0] & masks[1]
            paired = [self._expand(block, mask)[both] for block, mask in zip(blocks, masks)]
            limit = min(min(widths), int(both.sum()) - 1, CCAAlignment(target).max_pca)
        else:
            limit = min(min(block.shape) for block in blocks)
        if limit < 1:
            raise ValueError("average / weighted fusion needs at least 2 rows with every modality present")
        if target > limit and self.n_components is not None:
            warnings.warn(f"n_components={target} is more than the data allows ({limit}: limited by the rows "
                          f"and features of the modalities); using {limit}.", stacklevel=3)
        target = min(target, limit)
        if use_cca:
            self.alignment_ = fit_memoized(CCAAlignment(target), *paired)
            self.n_components_ = len(self.alignment_.correlations_)
            return
        self.n_components_ = int(target)
        for (name, _, _), block in zip(self.transformers_, blocks):
            if block.shape[1] != target or self.n_components is not None:
                self.projections_[name] = fit_memoized(PCAProjection(target), block)

    @staticmethod
    def _expand(block, mask):
        full = np.zeros((len(mask), block.shape[1]), dtype=block.dtype)
        full[mask] = block
        return full

    def _scale(self, block):
        """Each modality block is L2-normalised per row once, as it leaves its encoder."""
        return l2_normalize(block) if self.normalize else block

    def _project(self, name, block):
        """Map a (scaled) block into the common space of average / weighted fusion."""
        if self.alignment_ is not None:
            which = [n for n, _, _ in self.transformers_].index(name)
            block = self.alignment_.transform(block, which)
        elif name in self.projections_:
            block = self.projections_[name].transform(block)
        if self.alignment_ is not None or name in self.projections_:
            block = self._scale(block)  # normalised again in the common space
        return block.astype(np.float32, copy=False)

    def _fuse(self, blocks, masks):
        n_rows = len(masks[0])
        names = [name for name, _, _ in self.transformers_]
        if self.method == "concat":
            parts = []
            for name, block, mask in zip(names, blocks, masks):
                full = np.empty((n_rows, self._block_width(name)), dtype=np.float32)
                full[~mask] = self.fill_values_[name]
                if block is not None:
                    full[mask] = block
                parts.append(full)
            if self.indicator_:
                parts.append(np.column_stack(masks).astype(np.float32))
            return np.hstack(parts)
        if self.method == "gated":
            return self.gate_.fuse(*self._common_space(blocks, masks))
        fused = np.zeros((n_rows, self.n_components_), dtype=np.float32)
        total_weight = np.zeros(n_rows)
        for name, weight, block, mask in zip(names, self.weights_, blocks, masks):
            if block is None:
                continue
            fused[mask] += weight * self._project(name, block)
            total_weight[mask] += weight
        empty = total_weight == 0
        total_weight[empty] = 1.0  # a row with no modality at all stays zero
        return (fused / total_weight[:, None]).astype(np.float32)

    def _common_space(self, blocks, masks):
        """Every block projected to the common space, zeros where absent, and the (n, M) presence matrix."""
        full = []
        for (name, _, _), block, mask in zip(self.transformers_, blocks, masks):
            projected = np.zeros((len(mask), self.n_components_), dtype=np.float32)
            if block is not None:
                projected[mask] = self._project(name, block)
            full.append(projected)
        return full, np.column_stack(masks)

    def _block_width(self, name):
        return self.block_widths_[name]

    def _block_feature_names(self, name):
        fitted = self.named_transformers_[name]
        if not hasattr(self, "_block_names"):
            self._block_names = {}
        if name not in self._block_names:
            if hasattr(fitted, "get_feature_names_out"):
                names = fitted.get_feature_names_out()
            else:  # e.g. a FunctionTransformer without feature_names_out: numbered, as sklearn does
                names = [f"x{i}" for i in range(self.block_widths_[name])]
            self._block_names[name] = np.asarray(names, dtype=object)
        return self._block_names[name]

    @property
    def named_transformers_(self):
        check_is_fitted(self, "transformers_")
        return {name: fitted for name, fitted, _ in self.transformers_}

    def get_feature_names_out(self, input_features=None):
        """Names of the fused features: ``"<modality>__<feature>"`` for concat, ``fused<i>`` otherwise."""
        check_is_fitted(self, "transformers_")
        if self.method != "concat":
            return np.asarray([f"fused{i}" for i in range(self.n_components_)], dtype=object)
        names = [f"{name}__{feature}" for name, _, _ in self.transformers_
                 for feature in self._block_feature_names(name)]
        if self.indicator_:
            names += [f"{name}__present" for name, _, _ in self.transformers_]
        return np.asarray(names, dtype=object)

    def __getstate__(self):
        state = self.__dict__.copy()
        state.pop("_block_names", None)
        return state

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        tags.input_tags.string = True
        return tags


def make_fusion(*transformers, method="concat", weights=None, n_components=None, alignment="cca",
                normalize=True, add_indicator="auto"):
    """Build a :class:`ModalityFusion` from ``(transformer, column)`` pairs.

    Modality names are the column names (like
    :func:`~sklearn.compose.make_column_transformer` names them after the
    transformers, here the column says more).

    Examples
    --------
    >>> from skmm import ImageEncoder, TextEncoder, make_fusion
    >>> fusion = make_fusion((ImageEncoder(), "image"), (TextEncoder(), "text"), method="average")
    >>> [name for name, _, _ in fusion.transformers]
    ['image', 'text']
    """
    triples = []
    for transformer, column in transformers:
        name = column if isinstance(column, str) else "_".join(map(str, column))
        triples.append((name, transformer, column))
    return ModalityFusion(triples, method=method, weights=weights, n_components=n_components,
                          alignment=alignment, normalize=normalize, add_indicator=add_indicator)
