"""Final estimators: the torch MLP, the end-to-end multimodal network, and late fusion."""

from .late_fusion import make_late_fusion
from .mlp import TorchMLPClassifier, TorchMLPRegressor
from .multimodal_net import MultimodalNetClassifier, MultimodalNetRegressor

__all__ = ["MultimodalNetClassifier", "MultimodalNetRegressor", "TorchMLPClassifier", "TorchMLPRegressor",
           "make_late_fusion"]
