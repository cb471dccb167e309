"""Which modality branches are embeddings: the question fusion and stacking both ask of a transformer."""

from __future__ import annotations

from sklearn.pipeline import Pipeline

from .image import ImageEncoder
from .text import TextEncoder


def embedding_encoder(transformer):
    """The :class:`~skmm.ImageEncoder` or :class:`~skmm.TextEncoder` a modality's transformer is or ends in.

    Parameters
    ----------
    transformer : transformer
        A modality's transformer, as :class:`~skmm.ModalityFusion` takes it
        (an encoder, or a :class:`~sklearn.pipeline.Pipeline` ending in one).

    Returns
    -------
    encoder : ImageEncoder, TextEncoder or None
        None for any other transformer (numbers, categories, TF-IDF...).

    Examples
    --------
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import StandardScaler
    >>> from skmm import TextEncoder
    >>> from skmm.encoders import embedding_encoder
    >>> type(embedding_encoder(make_pipeline(TextEncoder()))).__name__
    'TextEncoder'
    >>> embedding_encoder(StandardScaler()) is None
    True
    """
    last = transformer.steps[-1][1] if isinstance(transformer, Pipeline) else transformer
    return last if isinstance(last, (ImageEncoder, TextEncoder)) else None
