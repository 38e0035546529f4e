"""Seeding of every random number generator physioemo touches."""

from __future__ import annotations

import os
import random
import sys

import numpy as np


def set_seed(seed, *, deterministic=True):
    """Seed Python, NumPy and (if imported or importable) torch.

    Parameters
    ----------
    seed : int
        The seed.
    deterministic : bool
        Ask torch for deterministic algorithms (CPU results then repeat exactly).

    Returns
    -------
    rng : numpy.random.Generator
        A generator seeded with ``seed`` for callers that want one.
    """
    from ._checks import check_number

    seed = check_number("seed", seed, low=0, integer=True)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    os.environ.setdefault("PYTHONHASHSEED", str(seed))
    if "torch" in sys.modules:
        import torch

        torch.manual_seed(seed)
        if deterministic:
            torch.use_deterministic_algorithms(True, warn_only=True)
    return np.random.default_rng(seed)
