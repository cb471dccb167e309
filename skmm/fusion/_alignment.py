"""Mapping modality blocks into one space for average / weighted / gated fusion.

Three alignments, one interface (``transform(block, which)``: modality
``which``'s block in the common space):

- :class:`TargetAlignment` (supervised): per modality, a ridge regression from
  its block onto the target's coding, so coordinate j of every modality is that
  modality's evidence for target column j (a class, a regression target). Its
  training-row outputs are cross-fitted (5 folds), so a downstream model
  never trains on evidence that has seen the row's own label.
- :class:`CCAAlignment` (unsupervised, two modalities): regularised canonical
  correlation analysis, coordinate j of both blocks is the j-th pair of most
  correlated directions.
- :class:`PCAProjection` (unsupervised, unaligned): each block by its own PCA.
"""

from __future__ import annotations

import copy
import warnings

import joblib
import numpy as np
from scipy.optimize import nnls
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression, Ridge, RidgeCV
from sklearn.model_selection import KFold, StratifiedKFold

from .._messages import caller_stacklevel
from .._registry import in_process_memo
from .._target_kind import target_coding

RIDGE_ALPHAS = tuple(np.logspace(-3, 3, 13))


def _pca(n_components, block, random_state):
    """An exact PCA with the faster solver for the block's shape.

    A grid search fits this once per fold and candidate: the eigen-solver on
    the covariance when rows outnumber features, a full SVD otherwise, beat
    the randomized default (see docs/performance.md) and are exact.
    """
    solver = "covariance_eigh" if block.shape[0] > block.shape[1] else "full"
    return PCA(n_components=n_components, svd_solver=solver, random_state=random_state).fit(block)


_fits = in_process_memo(max_entries=8)  # skmm.clear_cache empties it


def fit_memoized(estimator, *arrays):
    """``estimator.fit(*arrays)``, or a copy of the same fit made earlier in this process.

    GridSearchCV clones the pipeline for every candidate: over ``fuse__method``,
    the average, weighted and gated candidates of one fold fit the very same
    alignment on the very same blocks. Keyed by the estimator's class and
    parameters and the arrays' content (hashing costs a small fraction of a
    fit), the few most recent fits are kept; each caller gets its own deep
    copy, so no two fusers share mutable state.
    """
    key = joblib.hash((type(estimator).__qualname__, estimator.get_params(), arrays))
    return copy.deepcopy(_fits.get_or_make(key, lambda: estimator.fit(*arrays)))


def _cross_fitted_ridge(block, coding, folds):
    """A RidgeCV on all rows (its penalty by efficient leave-one-out) and K-fold cross-fitted predictions.

    Each fold's rows are predicted by a ridge that never saw their labels;
    the one penalty they share is chosen on all rows (a single scalar, as
    :class:`~sklearn.preprocessing.TargetEncoder` shares its smoothing). Not
    the leave-one-out predictions themselves: with many features a row's
    leave-one-out prediction is pushed away from its own label by its
    leverage, which a downstream model learns to read backwards (the leak of
    leave-one-out target encoding). K-fold predictions do not carry it.
    """
    ridge = RidgeCV(alphas=RIDGE_ALPHAS).fit(block, coding)
    cross_fitted = np.empty(coding.shape, dtype=np.float32)
    for train, test in folds:
        # Ridge answers a one-column target with a 1-D prediction (binary classes, one number).
        fitted = Ridge(alpha=ridge.alpha_).fit(block[train], coding[train])
        cross_fitted[test] = fitted.predict(block[test]).reshape(len(test), -1)
    return ridge, cross_fitted


def _folds(coding, kind, n_splits, random_state):
    """Stratified folds for classes (by the row's class), plain shuffled folds otherwise."""
    n_splits = max(2, min(n_splits, len(coding)))
    if kind == "classes":
        labels = coding.argmax(axis=1) if coding.shape[1] > 1 else coding[:, 0]
        if np.bincount(labels.astype(int)).min() >= n_splits:
            return list(StratifiedKFold(n_splits, shuffle=True, random_state=random_state).split(coding, labels))
    return list(KFold(n_splits, shuffle=True, random_state=random_state).split(coding))


class LogEvidence(BaseEstimator):
    """A modality's class evidence (its ridge predictions of the one-hot coding) as calibrated log-probabilities.

    Ridge predictions are probability-like, whatever a modality knows: a weak
    modality's ±0.1 deviates from the class shares as much as a strong one's
    hesitation does, and in an unweighted mean it drowns the strong one's
    confident rows. A multinomial :class:`~sklearn.linear_model.LogisticRegression`
    on the evidence turns it into log-probabilities, centred across classes
    (the log-odds for one class column): a modality that knows little gives
    nearly flat ones, a confident one large ones, and their sum is the
    product-of-experts combination that adds independent evidence.
    Multilabel targets get one binary calibration per label.
    """

    def fit(self, evidence, coding, kind):
        self.multiclass_ = kind == "classes" and coding.shape[1] > 1
        if self.multiclass_:
            self.calibrators_ = [_calibrator(evidence, coding.argmax(axis=1))]
        else:
            self.calibrators_ = [_calibrator(evidence[:, [j]], coding[:, j]) for j in range(coding.shape[1])]
        self.n_columns_ = coding.shape[1]
        return self

    def transform(self, evidence):
        if not self.multiclass_:
            return np.column_stack([_log_odds(calibrator, evidence[:, [j]])
                                    for j, calibrator in enumerate(self.calibrators_)]).astype(np.float32)
        calibrator = self.calibrators_[0]
        log_proba = np.empty((len(evidence), self.n_columns_))
        known = calibrator.predict_log_proba(evidence)
        log_proba[:] = known.min(axis=1, keepdims=True)  # a class the modality never saw: no likelier than the least
        log_proba[:, calibrator.classes_.astype(int)] = known
        return (log_proba - log_proba.mean(axis=1, keepdims=True)).astype(np.float32)


def _calibrator(evidence, labels):
    if len(np.unique(labels)) < 2:
        return None  # every present row of one class: no evidence to calibrate
    return LogisticRegression(max_iter=1000).fit(evidence, labels)


def _log_odds(calibrator, evidence):
    return np.zeros(len(evidence)) if calibrator is None else calibrator.decision_function(evidence)


class TargetAlignment(BaseEstimator):
    """Supervised alignment: each modality's block mapped to its evidence for the target.

    Per modality, a :class:`~sklearn.linear_model.RidgeCV` (its penalty chosen
    by efficient leave-one-out) regresses the target's coding (one-hot classes,
    standardised numbers) on the block. For classes, :class:`LogEvidence`
    calibrates those predictions into log-probabilities, centred across classes.
    Coordinate j of every projected block is then the same thing, that
    modality's evidence for target column j, so averaging them adds agreeing
    evidence, and a modality that knows little moves the mean little.

    ``fit`` also sets ``cross_fitted_``: each training row's projection by a
    ridge fitted on the other folds of a ``cv``-fold split (stratified for
    classes), which the fusion uses for the rows it was fitted on, as
    :class:`~sklearn.preprocessing.TargetEncoder` cross-fits. The calibration
    is fitted on those cross-fitted predictions, never on a row's own fit.
    """

    def __init__(self, cv=5, random_state=0, target_type="auto"):
        self.cv = cv
        self.random_state = random_state
        self.target_type = target_type

    def fit(self, blocks, masks, y):
        """``blocks``: per modality, its rows present (``masks`` says which rows of ``y`` they are)."""
        coding, self.target_kind_ = target_coding(y, self.target_type)
        self.ridges_, self.calibrations_, self.cross_fitted_ = [], [], []
        for block, mask in zip(blocks, masks):
            folds = _folds(coding[mask], self.target_kind_, self.cv, self.random_state)
            ridge, cross_fitted = _cross_fitted_ridge(block, coding[mask], folds)
            calibration = None
            if self.target_kind_ != "continuous":
                calibration = LogEvidence().fit(cross_fitted, coding[mask], self.target_kind_)
                cross_fitted = calibration.transform(cross_fitted)
            self.ridges_.append(ridge)
            self.calibrations_.append(calibration)
            self.cross_fitted_.append(cross_fitted)
        self.n_components_ = self.cross_fitted_[0].shape[1]
        return self

    def __setstate__(self, state):
        # Saved before the calibration (0.2 development builds): their fusion was fitted on raw ridge evidence.
        state.setdefault("calibrations_", [None] * len(state.get("ridges_", ())))
        super().__setstate__(state)

    def transform(self, block, which):
        evidence = self.ridges_[which].predict(block).reshape(len(block), -1)
        calibration = self.calibrations_[which]
        return evidence if calibration is None else calibration.transform(evidence)


class CCAAlignment(BaseEstimator):
    """Regularised CCA between two blocks: maps each into a shared, axis-aligned space.

    Each block is reduced by PCA to at most ``max_pca`` components, then the
    canonical directions are found from the regularised covariances
    (``S + regularization * mean(diag(S)) * I``); coordinate j of both
    outputs is the j-th canonical variate, so averaging them adds agreeing
    evidence instead of unrelated axes.
    """

    def __init__(self, n_components, regularization=0.1, max_pca=256, random_state=0):
        self.n_components = n_components
        self.regularization = regularization
        self.max_pca = max_pca
        self.random_state = random_state

    def fit(self, first, second):
        n = first.shape[0]
        self.pcas_ = []
        reduced = []
        for block in (first, second):
            width = min(self.max_pca, block.shape[1], n - 1)
            pca = _pca(width, block, self.random_state)
            self.pcas_.append(pca)
            reduced.append(pca.transform(block))
        a, b = reduced
        s_aa, s_bb, s_ab = a.T @ a / n, b.T @ b / n, a.T @ b / n
        s_aa += self.regularization * np.mean(np.diag(s_aa)) * np.eye(len(s_aa))
        s_bb += self.regularization * np.mean(np.diag(s_bb)) * np.eye(len(s_bb))
        w_a, w_b = _inverse_sqrt(s_aa), _inverse_sqrt(s_bb)
        u, correlations, vt = np.linalg.svd(w_a @ s_ab @ w_b, full_matrices=False)
        k = min(self.n_components, len(correlations))
        self.directions_ = [w_a @ u[:, :k], w_b @ vt.T[:, :k]]
        self.correlations_ = correlations[:k]
        return self

    def transform(self, block, which):
        return self.pcas_[which].transform(block) @ self.directions_[which]


def _inverse_sqrt(matrix):
    values, vectors = np.linalg.eigh(matrix)
    return (vectors / np.sqrt(np.clip(values, 1e-12, None))) @ vectors.T


class PCAProjection(TransformerMixin, BaseEstimator):
    """Per-block PCA to a common width (the fallback for other than two modalities)."""

    def __init__(self, n_components, random_state=0):
        self.n_components = n_components
        self.random_state = random_state

    def fit(self, block, y=None):
        self.pca_ = _pca(self.n_components, block, self.random_state)
        return self

    def transform(self, block):
        return self.pca_.transform(block)


def learn_modality_weights(blocks, masks, y, target_type="auto"):
    """Non-negative modality weights, summing to 1, that make the weighted average predict ``y`` best.

    Each modality's (common-space) block predicts the target's coding by a
    ridge regression, cross-fitted (5 folds); on the rows that have every
    modality, the weights minimise the squared error of the weighted average of
    those predictions (non-negative least squares). A modality that adds
    nothing gets a weight near 0. Equal weights if no modality predicts at all.
    """
    coding, kind = target_coding(y, target_type)
    every = np.logical_and.reduce(masks)
    if every.sum() < 2:
        raise ValueError("learning the modality weights needs at least 2 rows with every modality present")
    predictions = []
    for block, mask in zip(blocks, masks):
        folds = _folds(coding[mask], kind, 5, 0)
        _, cross_fitted = _cross_fitted_ridge(block[mask], coding[mask], folds)
        full = np.zeros((len(mask), coding.shape[1]))
        full[mask] = cross_fitted
        predictions.append(full[every].ravel())
    weights, _ = nnls(np.column_stack(predictions), coding[every].ravel())
    if weights.sum() <= 0:
        return np.full(len(blocks), 1.0 / len(blocks))
    return weights / weights.sum()


def fit_common_space(names, blocks, masks, y, *, alignment, n_components=None, target_type="auto"):
    """Fit the common space of average / weighted / gated fusion.

    ``alignment`` is ``"supervised"``, ``"cca"`` (falls back to ``"pca"`` for
    other than two modalities) or ``"pca"``; ``blocks`` hold each modality's
    present rows. Returns ``(alignment, projections, width, cross_fitted)``:
    the fitted :class:`TargetAlignment` or :class:`CCAAlignment` (or None),
    the per-modality :class:`PCAProjection` dict, the common width, and for
    supervised alignment the training rows' cross-fitted blocks (else None).
    """
    if alignment == "supervised":
        fitted = fit_memoized(TargetAlignment(target_type=target_type), blocks, masks, y)
        cross_fitted = fitted.cross_fitted_
        del fitted.cross_fitted_  # training-row values: not part of the fitted model
        return fitted, {}, int(fitted.n_components_), cross_fitted
    use_cca = alignment == "cca" and len(blocks) == 2
    widths = [block.shape[1] for block in blocks]
    target = n_components or min(widths)
    if use_cca:
        both = masks[0] & masks[1]
        paired = []
        for block, mask in zip(blocks, masks):
            full = np.zeros((len(mask), block.shape[1]), dtype=block.dtype)
            full[mask] = block
            paired.append(full[both])
        limit = min(min(widths), int(both.sum()) - 1, CCAAlignment(target).max_pca)
    else:
        limit = min(min(block.shape) for block in blocks)
    if limit < 1:
        raise ValueError("average / weighted / gated fusion needs at least 2 rows with every modality present")
    if target > limit and n_components is not None:
        warnings.warn(f"n_components={target} is more than the data allows ({limit}: limited by the rows "
                      f"and features of the modalities); using {limit}.", stacklevel=caller_stacklevel())
    width = int(min(target, limit))
    if use_cca:
        fitted = fit_memoized(CCAAlignment(width), *paired)
        return fitted, {}, len(fitted.correlations_), None
    projections = {name: fit_memoized(PCAProjection(width), block) for name, block in zip(names, blocks)
                   if block.shape[1] != width or n_components is not None}
    return None, projections, width, None
