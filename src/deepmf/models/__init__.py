"""Rating models (plain ``torch.nn.Module``s) and the name → class registry."""

from deepmf.models.base import RatingModel
from deepmf.models.deep import DeepMF
from deepmf.models.mf import MF
from deepmf.models.neumf import NeuMF
from deepmf.models.registry import MODELS, create_model, default_train_options, model_from_config, register

__all__ = ["MF", "MODELS", "DeepMF", "NeuMF", "RatingModel", "create_model", "default_train_options",
           "model_from_config", "register"]
