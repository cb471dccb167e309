"""Encoders: image and text models as scikit-learn transformers.

``EmbedColumns`` embeds several columns of a table side by side, each by its
own encoder (what ``skmm embed`` writes); :mod:`skmm.encoders.trunks` cuts a
backbone into a frozen trunk and a trainable top, for the estimators that
train one.
"""

from ._base import EncodingError
from ._columns import EmbedColumns
from .image import ImageEncoder
from .text import TextEncoder

__all__ = ["EmbedColumns", "EncodingError", "ImageEncoder", "TextEncoder"]
