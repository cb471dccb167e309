"""Encoders: image and text models, and the numbers and categories beside them, as scikit-learn transformers.

``EmbedColumns`` embeds several columns of a table side by side, each by its
own encoder (what ``skmm embed`` writes); :mod:`skmm.encoders.trunks` cuts a
backbone into a frozen trunk and a trainable top, for the estimators that
train one; :class:`IntermediateFeatures` reads a backbone below its output.
"""

from ._base import EncodingError, EncodingWarning
from ._branches import embedding_encoder
from ._columns import EmbedColumns
from ._model_names import ModelNotFoundError, WeightsUnavailableError
from .image import ImageEncoder
from .intermediate import IntermediateFeatures
from .tabular import TabularEncoder
from .text import TextEncoder

__all__ = ["EmbedColumns", "EncodingError", "EncodingWarning", "ImageEncoder", "IntermediateFeatures",
           "ModelNotFoundError", "TabularEncoder", "TextEncoder", "WeightsUnavailableError", "embedding_encoder"]
