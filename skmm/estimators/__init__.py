"""Final estimators: the torch MLP, the end-to-end multimodal network, late fusion and stacking."""

from ._cross_fitting import CrossFittedClassifier
from ._final_estimators import LogLinearPoolClassifier, default_final_estimator, final_estimator_name
from ._net_data import network_can_read
from ._stacking_members import PresentRowsClassifier, default_stacking_members, log_probability_logistic_regression
from .late_fusion import make_late_fusion
from .mlp import TorchMLPClassifier, TorchMLPRegressor
from .multimodal_net import MultimodalNetClassifier, MultimodalNetRegressor
from .stacking import MultimodalStackingClassifier

__all__ = ["CrossFittedClassifier", "LogLinearPoolClassifier", "MultimodalNetClassifier", "MultimodalNetRegressor",
           "MultimodalStackingClassifier", "PresentRowsClassifier", "TorchMLPClassifier", "TorchMLPRegressor",
           "default_final_estimator", "default_stacking_members", "final_estimator_name",
           "log_probability_logistic_regression", "make_late_fusion", "network_can_read"]
