"""Late (model) fusion: one model per modality, their predicted probabilities combined."""

from __future__ import annotations

from numbers import Integral

from sklearn.base import clone
from sklearn.ensemble import StackingClassifier, VotingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.utils._param_validation import HasMethods, StrOptions, validate_params

from ..fusion import ModalityFusion

_LATE_METHODS = ("average", "weighted", "stacking")


@validate_params(
    {
        "method": [StrOptions(set(_LATE_METHODS))],
        "weights": ["array-like", None],
        "final_estimator": [HasMethods("fit"), None],
        "cv": ["cv_object"],
        "n_jobs": [Integral, None],
    },
    prefer_skip_nested_validation=True,
)
def make_late_fusion(*modalities, method="average", weights=None, final_estimator=None, cv=5, n_jobs=None):
    """Build a late-fusion classifier: one model per modality, probabilities combined.

    Early fusion (:class:`~skmm.ModalityFusion`) joins the *features* before one
    classifier; late fusion trains one classifier per modality and joins their
    *predictions*. This helper returns scikit-learn's own
    :class:`~sklearn.ensemble.VotingClassifier` (soft voting: average or
    weighted average of the probabilities) or
    :class:`~sklearn.ensemble.StackingClassifier` (a final estimator learns
    how to combine out-of-fold probabilities). They are battle-tested,
    grid-searchable (``image__clf__C``, ``weights``) and already handle
    cloning, label encoding and cross-validated stacking; a new class would
    only re-implement them.

    Each modality becomes ``Pipeline([("encode", ModalityFusion([(name,
    encoder, column)])), ("clf", estimator)])`` so that it reads its own column
    of the table, with the same L2 normalisation and missing-value handling
    as early fusion.

    Parameters
    ----------
    *modalities : (name, encoder, column, estimator) tuples
        One per modality.
    method : {"average", "weighted", "stacking"}, default="average"
        ``"average"``: mean probability; ``"weighted"``: weighted mean with
        ``weights``; ``"stacking"``: ``final_estimator`` fitted on
        cross-validated probabilities.
    weights : sequence of float, optional
        Per-modality weights for ``"weighted"``.
    final_estimator : classifier, optional
        For ``"stacking"``; default ``LogisticRegression(max_iter=1000)``.
    cv : int or cross-validation generator, default=5
        Folds for the out-of-fold probabilities of ``"stacking"``.
    n_jobs : int, optional
        Parallel fits of the per-modality models.

    Returns
    -------
    classifier : VotingClassifier or StackingClassifier

    Examples
    --------
    >>> from sklearn.linear_model import LogisticRegression
    >>> from skmm import ImageEncoder, TextEncoder, make_late_fusion
    >>> late = make_late_fusion(
    ...     ("image", ImageEncoder(), "image", LogisticRegression()),
    ...     ("text", TextEncoder(), "text", LogisticRegression()),
    ...     method="average")
    >>> type(late).__name__
    'VotingClassifier'
    """
    if len(modalities) < 2:
        raise ValueError("late fusion needs at least two modalities")
    estimators = []
    for modality in modalities:
        if len(modality) != 4:
            raise ValueError(f"each modality is a (name, encoder, column, estimator) tuple, got {modality!r}")
        name, encoder, column, estimator = modality
        branch = Pipeline([("encode", ModalityFusion([(name, encoder, column)])), ("clf", estimator)])
        estimators.append((name, branch))
    if method == "stacking":
        final = final_estimator if final_estimator is not None else LogisticRegression(max_iter=1000)
        return StackingClassifier(estimators, final_estimator=clone(final), cv=cv, stack_method="predict_proba",
                                  n_jobs=n_jobs)
    if method == "weighted" and weights is None:
        raise ValueError("method='weighted' needs weights")
    return VotingClassifier(estimators, voting="soft", weights=weights if method == "weighted" else None,
                            n_jobs=n_jobs)
