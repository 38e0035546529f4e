"""Models (PyTorch + PyTorch Geometric): HiSTN, its graphs and layers, the registry."""

from .graphs import GRAPHS
from .histn import HiSTN
from .registry import MODELS, build_model, load_checkpoint, save_checkpoint

__all__ = ["GRAPHS", "MODELS", "HiSTN", "build_model", "load_checkpoint", "save_checkpoint"]
