"""DREAMER data: loader, seeded stand-in generator, HiSTN preprocessing, windows, cache.

Importing this package loads NumPy only; SciPy is imported when a file is read or written.
"""

from . import dreamer as DREAMER  # noqa: N812  (constants: DREAMER.EEG_CHANNELS, ...)
from .cache import load_preprocessed
from .dreamer import Dreamer, DreamerSubject, histn_preprocess, load_dreamer
from .synthetic import make_synthetic_dreamer
from .windows import binarize, make_windows

__all__ = ["DREAMER", "Dreamer", "DreamerSubject", "binarize", "histn_preprocess",
           "load_dreamer", "load_preprocessed", "make_synthetic_dreamer", "make_windows"]
