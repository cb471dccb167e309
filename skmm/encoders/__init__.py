"""Encoders: image and text models as scikit-learn transformers."""

from ._base import EncodingError
from .image import ImageEncoder
from .text import TextEncoder

__all__ = ["EncodingError", "ImageEncoder", "TextEncoder"]
