"""Which DREAMER subjects HiSTN preprocessing accepts, checked as ``evaluate`` would."""

from __future__ import annotations

from ..exceptions import DataError
from .dreamer import histn_preprocess


def check_subjects(dreamer, subjects=None, **params):
    """Preprocess each subject alone and report the first problem of each.

    The check is :func:`~physioemo.datasets.dreamer.histn_preprocess` itself, subject by
    subject, so it finds exactly what ``physioemo evaluate`` would refuse (NaN or infinite
    samples in the kept 60 s or the reference baseline, stimuli shorter than 60 s, flat
    channels) and nothing else.

    Parameters
    ----------
    dreamer : Dreamer
        A loaded file (``lazy=True`` is enough).
    subjects : sequence of int | None
        0-based subject indices (default: all).
    **params
        Passed to :func:`histn_preprocess` (``l_freq``, ``h_freq``, ``normalization``).

    Returns
    -------
    problems : dict of int to str | None
        For each subject's 1-based number, ``None`` if it is usable, else the message.
    """
    subjects = range(dreamer.n_subjects) if subjects is None else subjects
    problems = {}
    for s in subjects:
        try:
            histn_preprocess(dreamer, subjects=[s], **params)
        except DataError as err:
            problems[int(s) + 1] = str(err)
        else:
            problems[int(s) + 1] = None
    return problems
