"""Final estimators: the torch MLP and late fusion."""

from .late_fusion import make_late_fusion
from .mlp import TorchMLPClassifier, TorchMLPRegressor

__all__ = ["TorchMLPClassifier", "TorchMLPRegressor", "make_late_fusion"]
