"""Saving and loading fitted skmm pipelines safely with skops.

``joblib.dump`` / ``pickle`` work too, but unpickling runs arbitrary code:
only load pickles you made yourself. ``skops.io`` files instead list the
types they contain, and loading refuses any type that was not trusted
explicitly. :func:`load` trusts exactly :data:`TRUSTED_TYPES` (skmm's own
classes and the numpy / scikit-learn pieces they hold) plus what you pass in
``trusted``, and names anything else it finds.

Neither format contains backbone weights that come from a named source
(``weights="DEFAULT"``, a sentence-transformers name, a local path): they
are reloaded on first use, so a fitted pipeline file stays small.
"""

from __future__ import annotations

from ._compat import LEGACY_TRUSTED_TYPES

TRUSTED_TYPES = (
    "skmm.encoders.image.ImageEncoder",
    "skmm.encoders.text.TextEncoder",
    "skmm.encoders.tabular.TabularEncoder",
    "skmm.encoders.intermediate.IntermediateFeatures",
    "skmm.encoders.intermediate._ImageBlockPools",
    "skmm.encoders.intermediate._TextLayerMeans",
    "skmm.encoders.tabular._as_categories",  # the function its categorical branch's FunctionTransformer calls
    "skmm.fusion.ModalityFusion",
    "skmm.fusion._alignment.CCAAlignment",
    "skmm.fusion._alignment.LogEvidence",
    "skmm.fusion._alignment.PCAProjection",
    "skmm.fusion._alignment.TargetAlignment",
    "skmm.fusion._gating.ModalityGate",
    "skmm.estimators.mlp.TorchMLPClassifier",
    "skmm.estimators.mlp.TorchMLPRegressor",
    "skmm.estimators.multimodal_net.MultimodalNetClassifier",
    "skmm.estimators.multimodal_net.MultimodalNetRegressor",
    "skmm.estimators.stacking.MultimodalStackingClassifier",
    "skmm.estimators._cross_fitting.CrossFittedClassifier",
    "skmm.estimators._stacking_members.PresentRowsClassifier",
    "skmm.estimators._final_estimators.LogLinearPoolClassifier",
    # The functions the stacking members' FunctionTransformers call.
    "skmm.estimators._stacking_members.texts_of",
    "skmm.estimators._stacking_members.log_of_clipped",
    "skmm.estimators._stacking_members.vader_scores",
    "skmm.estimators._stacking_members._vader_feature_names",
    "skmm._targets.TaskTargets",
    "skmm.estimators._net_data._PooledTrunk",
    "skmm.encoders._trunks.ImageSplit",
    "skmm.encoders._trunks.ImageTrunk",
    "skmm.encoders._trunks.TextTrunk",
    "skmm._targets.ClassTargets",
    "skmm._targets.RegressionTargets",
    "skmm._training.History",
    *LEGACY_TRUSTED_TYPES,
    # What those hold, beyond the types skops trusts by default.
    "sklearn.preprocessing._label.LabelEncoder",
    "sklearn.decomposition._pca.PCA",
    "sklearn.linear_model._ridge.RidgeCV",
    # A stack's default final estimator, a GridSearchCV: its scorer, and the stack's folds it chose on.
    "sklearn.metrics._scorer._Scorer",
    "sklearn.metrics._classification.accuracy_score",
    "sklearn.model_selection._split._CVIterableWrapper",
    "sklearn.model_selection._split.PredefinedSplit",
    "numpy.dtype",
)


class UntrustedTypesError(ValueError):
    """The file holds types that neither skmm nor the caller trusts."""


def dump(model, file):
    """Save ``model`` (any fitted estimator or pipeline) with ``skops.io``.

    Parameters
    ----------
    model : estimator
    file : str or Path

    Examples
    --------
    >>> from sklearn.linear_model import LogisticRegression
    >>> from skmm import persistence
    >>> model = LogisticRegression().fit([[0.0], [1.0]], [0, 1])
    >>> persistence.dump(model, "model.skops")  # doctest: +SKIP
    """
    import skops.io

    skops.io.dump(model, file)


def untrusted_types(file, trusted=()):
    """The types in ``file`` that are neither trusted by skops, in :data:`TRUSTED_TYPES`, nor in ``trusted``."""
    import skops.io

    return _untrusted(skops.io.get_untrusted_types(file=file), trusted)


def _untrusted(found, trusted):
    allowed = set(TRUSTED_TYPES) | set(trusted)
    return sorted(t for t in found if t not in allowed)


def load(file, trusted=()):
    """Load a model saved with :func:`dump`, refusing types nobody trusted.

    Parameters
    ----------
    file : str or Path
    trusted : sequence of str, default=()
        More fully qualified type names to trust (your own estimators).

    Returns
    -------
    model : estimator

    Raises
    ------
    UntrustedTypesError
        Naming the types that are not trusted.
    """
    import skops.io

    found = skops.io.get_untrusted_types(file=file)  # read once: the check and the load use the same list
    unknown = _untrusted(found, trusted)
    if unknown:
        raise UntrustedTypesError(
            f"{file} holds types that are not trusted: {unknown}. Pass them in trusted=[...] "
            "if you know where the file comes from."
        )
    return skops.io.load(file, trusted=found)
