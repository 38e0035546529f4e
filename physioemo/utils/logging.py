"""Logging and progress bars.

Libraries log to ``logging.getLogger("physioemo")``; only the CLI configures handlers.
"""

from __future__ import annotations

import logging
import sys

logger = logging.getLogger("physioemo")

_QUIET = False


def configure_logging(verbosity=0):
    """Configure the ``physioemo`` logger for command-line use.

    Parameters
    ----------
    verbosity : int
        ``-1`` quiet (warnings only, no progress bars), ``0`` info, ``>= 1`` debug.
    """
    global _QUIET
    _QUIET = verbosity < 0
    level = logging.WARNING if verbosity < 0 else logging.INFO if verbosity == 0 else logging.DEBUG
    logger.setLevel(level)
    ours = [h for h in logger.handlers if getattr(h, "_physioemo", False)]
    for handler in ours:  # stderr may have been replaced since (tests, notebooks)
        handler.stream = sys.stderr  # not setStream(): it flushes the old, maybe closed, one
    if not ours:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s",
                                               datefmt="%H:%M:%S"))
        handler._physioemo = True
        logger.addHandler(handler)
    logger.propagate = False


def progress(iterable=None, *, desc=None, total=None, disable=None, **kwargs):
    """Wrap ``iterable`` in a tqdm progress bar (silenced by ``-q``).

    Parameters
    ----------
    iterable : iterable | None
        What to iterate over.
    desc : str | None
        Label shown left of the bar.
    total : int | None
        Number of items when ``iterable`` has no length.
    disable : bool | None
        Force the bar off (``True``) or on (``False``); ``None`` follows ``-q``.
    **kwargs
        Passed to :class:`tqdm.tqdm`.
    """
    from tqdm.auto import tqdm

    if disable is None:
        disable = _QUIET
    return tqdm(iterable, desc=desc, total=total, disable=disable, leave=False,
                dynamic_ncols=True, **kwargs)
