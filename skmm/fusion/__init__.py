"""Early fusion: encode the modality columns of a table and fuse them into one feature matrix.

``ModalityFusion`` (and ``make_fusion``) live here; the common spaces that
average / weighted / gated fusion need are in ``_alignment``, the learned
per-row gate in ``_gating``.
"""

from ._fusion import ALIGNMENTS, METHODS, ModalityFusion


def make_fusion(*transformers, method="concat", weights=None, n_components=None, alignment="auto",
                normalize=True, add_indicator="auto", target_type="auto"):
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
                          alignment=alignment, normalize=normalize, add_indicator=add_indicator,
                          target_type=target_type)

__all__ = ["ALIGNMENTS", "METHODS", "ModalityFusion", "make_fusion"]
