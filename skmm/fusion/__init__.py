"""Early fusion: encode the modality columns of a table and fuse them into one feature matrix.

``ModalityFusion`` (and ``make_fusion``) live here; the common spaces that
average / weighted / gated fusion need are in ``_alignment``, the learned
per-row gate in ``_gating``.
"""

from sklearn.utils._param_validation import validate_params

from ._fusion import ALIGNMENTS, ModalityFusion

# make_fusion takes ModalityFusion's parameters, less the triples it builds.
_MAKE_FUSION_CONSTRAINTS = {name: constraints for name, constraints in ModalityFusion._parameter_constraints.items()
                            if name != "transformers"}


@validate_params(_MAKE_FUSION_CONSTRAINTS, prefer_skip_nested_validation=True)
def make_fusion(*transformers, method="concat", weights=None, n_components=None, alignment="auto",
                normalize="auto", add_indicator="auto", target_type="auto"):
    """Build a :class:`ModalityFusion` from ``(transformer, column)`` pairs.

    Modality names are the column names (like
    :func:`~sklearn.compose.make_column_transformer` names them after the
    transformers, here the column says more).

    Parameters
    ----------
    *transformers : (transformer, str or list of str) tuples
        A transformer (or ``"drop"``) and the column (or list of columns) it
        reads. A list of columns names its modality by the columns joined
        with ``"_"``.
    method, weights, n_components, alignment, normalize, add_indicator, target_type
        As for :class:`ModalityFusion`.

    Returns
    -------
    fusion : ModalityFusion
        Not fitted.

    Examples
    --------
    >>> from skmm import ImageEncoder, TextEncoder, make_fusion
    >>> fusion = make_fusion((ImageEncoder(), "image"), (TextEncoder(), "text"), method="average")
    >>> [name for name, _, _ in fusion.transformers]
    ['image', 'text']
    """
    triples = []
    for pair in transformers:
        if not isinstance(pair, (tuple, list)) or len(pair) != 2:
            raise ValueError(f"make_fusion takes (transformer, column) pairs, got {pair!r}")
        transformer, column = pair
        name = column if isinstance(column, str) else "_".join(map(str, column))
        triples.append((name, transformer, column))
    return ModalityFusion(triples, method=method, weights=weights, n_components=n_components,
                          alignment=alignment, normalize=normalize, add_indicator=add_indicator,
                          target_type=target_type)


__all__ = ["ALIGNMENTS", "ModalityFusion", "make_fusion"]
