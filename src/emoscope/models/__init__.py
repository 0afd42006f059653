"""Model registry and architectures. Importing this package registers every family."""

from . import flagship, seed_cnns, vgg  # noqa: F401  (registers models)
from .registry import create_model, list_models, model_info, register_model

__all__ = ["create_model", "list_models", "model_info", "register_model"]
