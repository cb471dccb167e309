"""skmm: scikit-learn-compatible multimodal (image + text) classification."""

from ._cache import clear_cache
from ._registry import clear_model_registry
from . import performance  # noqa: F401  (honours SKMM_TUNE_MALLOC=1 at import)
from .encoders import EncodingError, ImageEncoder, TextEncoder
from .estimators import TorchMLPClassifier, TorchMLPRegressor, make_late_fusion
from .fusion import ModalityFusion, make_fusion

__version__ = "0.1.0"

__all__ = [
    "EncodingError",
    "ImageEncoder",
    "ModalityFusion",
    "TextEncoder",
    "TorchMLPClassifier",
    "TorchMLPRegressor",
    "clear_cache",
    "clear_model_registry",
    "make_fusion",
    "make_late_fusion",
    "__version__",
]
