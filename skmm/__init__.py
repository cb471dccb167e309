"""skmm: scikit-learn-compatible multimodal (image + text) classification.

The public names are imported on first use (PEP 562), so that ``import skmm``
and the ``skmm`` command line's ``--help`` do not wait for torch.
"""

import importlib

from . import _compat, performance  # noqa: F401  (performance honours SKMM_TUNE_MALLOC=1 at import)

__version__ = "0.2.0"

_compat.install_moved_modules()  # files saved by older versions name module paths that have moved

_WHERE = {
    "EncodingError": ".encoders",
    "EncodingWarning": ".encoders",
    "ModelNotFoundError": ".encoders",
    "WeightsUnavailableError": ".encoders",
    "ImageEncoder": ".encoders",
    "TabularEncoder": ".encoders",
    "TextEncoder": ".encoders",
    "ModalityFusion": ".fusion",
    "make_fusion": ".fusion",
    "MultimodalNetClassifier": ".estimators",
    "MultimodalNetRegressor": ".estimators",
    "MultimodalStackingClassifier": ".estimators",
    "TorchMLPClassifier": ".estimators",
    "TorchMLPRegressor": ".estimators",
    "make_late_fusion": ".estimators",
    "clear_cache": "._cache",
    "clear_model_registry": "._registry",
}

__all__ = [*sorted(_WHERE), "__version__"]


def __getattr__(name):
    if name in _WHERE:
        value = getattr(importlib.import_module(_WHERE[name], __name__), name)
        globals()[name] = value  # later lookups skip this function
        return value
    raise AttributeError(f"module 'skmm' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_WHERE))
