"""The ResUNet background-removal model."""

from .checkpoint import build_model, load_model, read_checkpoint, save_checkpoint
from .config import ModelConfig
from .resunet import ResUNet

__all__ = ["ModelConfig", "ResUNet", "build_model", "load_model", "read_checkpoint", "save_checkpoint"]
