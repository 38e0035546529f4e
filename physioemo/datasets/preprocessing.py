"""The one normalisation of EEG for HiSTN: training, ``predict`` and live prediction.

Every caller -- :func:`physioemo.datasets.histn_preprocess` (DREAMER clips),
``physioemo predict`` (a recording, offline) and ``physioemo acquire --model`` (a stream) --
normalises through this module, in one of two named forms:

``"paper"``
    The reference's recipe (histn-spec section 1): each channel is z-scored with the mean
    and population standard deviation (ddof=0) of a baseline segment, then each 60-s
    segment (one DREAMER clip) is divided by its own maximum absolute value, so that it
    spans [-1, 1]. **Transductive**: the scale of a sample depends on every sample of its
    60-s segment, including later ones, and under a within-clip split (``sd``) on the
    samples of the test part of the clip. A stream cannot compute it.
``"causal"``
    What a live stream can compute: the same baseline z-score, then division by the
    maximum absolute value of the *z-scored baseline* -- a per-channel constant known as
    soon as the baseline ends, before the stimulus. The scale is stationary: every window
    is scaled by the same number, wherever it lies in the recording, so a window's values
    do not depend on how long the stream has run (a running maximum would shrink early and
    late windows differently and jump at every artefact). Values are not bounded by 1
    outside the baseline (they are about the paper form's values times the ratio of the
    segment's to the baseline's peak). Offline (:func:`normalize_recording`) and
    chunk-by-chunk (:class:`CausalNormalizer`, any chunk sizes) give bit-identical results:
    both compute the baseline statistics with :func:`baseline_stats` on the same
    contiguous samples and apply the same element-wise formula. Samples up to the end of
    the baseline cannot be normalised causally (their scale needs the rest of the
    baseline): they are NaN.

Flat channels (one policy for every caller): a channel whose baseline has zero variance
cannot be z-scored, and a ``"paper"`` segment that is identically zero after z-scoring
cannot be max-abs scaled. Both raise :class:`~physioemo.exceptions.DataError` naming the
channel and where, with the fix; nothing is replaced by a made-up scale. Live prediction
stops predicting (and says so) when the baseline holds a flat channel, but the recording
goes on.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ..exceptions import DataError, ParameterError
from ..utils._checks import check_number, check_option

#: The normalisation forms, in the order of the documentation.
FORMS = ("paper", "causal")
#: Form assumed for a checkpoint that does not record one (written before forms existed).
LEGACY_FORM = "paper"
#: Earlier names accepted for a form.
ALIASES = {"baseline-zscore": "paper"}

_FIX_DEFAULT = "repair or drop that channel, or choose a baseline where it carries signal"


def check_form(form, *, name="normalization"):
    """Return the canonical name of a normalisation form.

    Parameters
    ----------
    form : str
        ``"paper"`` or ``"causal"`` (``"baseline-zscore"`` is an earlier name of
        ``"paper"``).
    name : str
        Parameter name used in the message.

    Returns
    -------
    form : str
        ``"paper"`` or ``"causal"``.
    """
    form = ALIASES.get(form, form) if isinstance(form, str) else form
    return check_option(name, form, FORMS)


def checkpoint_form(extra):
    """Return the form a checkpoint was trained with (its ``normalization`` extra).

    Parameters
    ----------
    extra : dict | None
        The checkpoint's extras; one without ``normalization`` predates the forms and was
        trained with ``"paper"``.

    Returns
    -------
    form : str
        ``"paper"`` or ``"causal"``.
    """
    return check_form((extra or {}).get("normalization") or LEGACY_FORM,
                      name="the checkpoint's normalization")


class BaselineStats(NamedTuple):
    """Per-channel statistics of a baseline segment (each of shape ``(n_channels, 1)``)."""

    mean: np.ndarray
    std: np.ndarray
    scale: np.ndarray


def _channel(ch_names, i):
    return ch_names[i] if ch_names is not None else str(i)


def baseline_stats(baseline, *, ch_names=None, where="the data", reference="the baseline",
                   hint=_FIX_DEFAULT):
    """Mean, population std and z-scored peak of each channel of a baseline.

    Parameters
    ----------
    baseline : ndarray, shape (n_channels, n_times)
        The baseline samples.
    ch_names : sequence of str | None
        Channel names for messages (default: row numbers).
    where : str
        Where the data come from, for messages (e.g. ``"subject 2, clip 1"``).
    reference : str
        What the baseline is, for messages.
    hint : str
        How to fix a flat channel.

    Returns
    -------
    stats : BaselineStats
        ``mean`` and ``std`` (ddof=0) and ``scale``, the maximum absolute value of the
        z-scored baseline (at least 1), each of shape ``(n_channels, 1)``, float64.

    Raises
    ------
    DataError
        A channel is flat in the baseline (zero variance), or the baseline is empty.
    """
    base = np.ascontiguousarray(baseline, dtype=np.float64)
    if base.ndim != 2 or base.shape[-1] < 2:
        raise DataError(f"{reference} of {where} must be (n_channels, n_times) with at least 2 "
                        f"samples, got shape {base.shape}; choose a longer baseline.")
    mean = base.mean(axis=-1, keepdims=True)
    std = base.std(axis=-1, keepdims=True)
    # exactly constant samples can leave a rounding residue of the order of eps * |mean|
    flat = std[:, 0] <= 8 * np.finfo(np.float64).eps * np.abs(mean[:, 0])
    if flat.any():
        names = [_channel(ch_names, i) for i in np.flatnonzero(flat)]
        which = (f"channel {names[0]}" if len(names) == 1
                 else f"channels {', '.join(names)}")
        raise DataError(f"{which} of {where} is flat in {reference} (std 0 over its "
                        f"{base.shape[-1]} samples), so it cannot be z-scored; {hint}.")
    scale = np.abs(_zscore(base, mean, std)).max(axis=-1, keepdims=True)
    return BaselineStats(mean, std, scale)


def _zscore(x, mean, std):
    return (x - mean) / std


def _causal(x, stats):
    """Return the causal form of ``x`` (the one formula, offline and streaming)."""
    return _zscore(x, stats.mean, stats.std) / stats.scale


def _max_abs_segments(z, segment_samples, *, ch_names, where, hint):
    """Divide each consecutive segment of ``z`` by its own max |z|, in place."""
    n_times = z.shape[-1]
    seg = n_times if segment_samples is None else int(segment_samples)
    for s0 in range(0, n_times, max(1, seg)):
        block = z[:, s0:s0 + seg]
        peak = np.abs(block).max(axis=-1, keepdims=True)
        if (peak == 0).any():
            ch = _channel(ch_names, int(np.argmax(peak[:, 0] == 0)))
            span = "" if segment_samples is None else f" (samples {s0}..{s0 + block.shape[-1]})"
            raise DataError(f"channel {ch} of {where} is flat in a segment{span}: every sample "
                            "equals the baseline mean, so it cannot be max-abs scaled; "
                            f"{hint}.")
        block /= peak
    return z


def normalize(data, baseline, *, form="paper", segment_samples=None, ch_names=None,
              where="the data", reference="the baseline", hint=_FIX_DEFAULT):
    """Normalise ``data`` with a separate ``baseline`` (e.g. a DREAMER clip and its baseline).

    Parameters
    ----------
    data : ndarray, shape (n_channels, n_times)
        The samples to normalise.
    baseline : ndarray, shape (n_channels, n_baseline)
        The reference segment (recorded before ``data`` for the causal form to be causal).
    form : {"paper", "causal"}
        See the module docstring.
    segment_samples : int | None
        ``"paper"``: length of the consecutive segments divided by their own maximum
        absolute value (``None``: the whole of ``data``, one DREAMER clip). Unused by
        ``"causal"``.
    ch_names : sequence of str | None
        Channel names for messages.
    where, reference, hint : str
        Where the data come from, what the baseline is and how to fix a flat channel, for
        messages.

    Returns
    -------
    out : ndarray of float64, shape (n_channels, n_times)
        The normalised samples.

    Raises
    ------
    DataError
        A flat channel (see the module docstring).
    """
    form = check_form(form)
    stats = baseline_stats(baseline, ch_names=ch_names, where=where, reference=reference,
                           hint=hint)
    x = np.asarray(data, dtype=np.float64)
    if form == "causal":
        return _causal(x, stats)
    z = _zscore(x, stats.mean, stats.std)
    return _max_abs_segments(z, segment_samples, ch_names=ch_names, where=where, hint=hint)


def _check_baseline_span(baseline_start, baseline_samples, n_times=None):
    lo = check_number("baseline_start", baseline_start, low=0, integer=True,
                      hint="pass the baseline's first sample (0 or more)")
    n = check_number("baseline_samples", baseline_samples, low=2, integer=True,
                     hint="pass a baseline of at least 2 samples")
    if n_times is not None and lo + n > n_times:
        raise DataError(f"the baseline (samples {lo}..{lo + n}) is not inside the recording "
                        f"({n_times} samples); choose a baseline inside it.")
    return int(lo), int(lo + n)


def normalize_recording(data, baseline_start, baseline_samples, *, form="paper",
                        segment_samples=None, ch_names=None, where="the recording",
                        hint=_FIX_DEFAULT):
    """Normalise a continuous recording whose baseline is part of it (offline).

    Parameters
    ----------
    data : ndarray, shape (n_channels, n_times)
        The recording.
    baseline_start, baseline_samples : int
        The baseline: ``data[:, baseline_start:baseline_start + baseline_samples]``.
    form : {"paper", "causal"}
        See the module docstring. ``"causal"`` gives exactly what
        :class:`CausalNormalizer` gives for the same samples in any chunks.
    segment_samples : int | None
        ``"paper"``: consecutive segments from the first sample, each divided by its own
        maximum absolute value (``None``: the whole recording).
    ch_names : sequence of str | None
        Channel names for messages.
    where, hint : str
        For messages.

    Returns
    -------
    out : ndarray of float64, shape (n_channels, n_times)
        The normalised recording; with ``"causal"``, NaN up to the end of the baseline.
    """
    form = check_form(form)
    x = np.asarray(data, dtype=np.float64)
    lo, hi = _check_baseline_span(baseline_start, baseline_samples, x.shape[-1])
    if form == "causal":
        norm = CausalNormalizer(x.shape[0], lo, hi - lo, ch_names=ch_names, where=where,
                                hint=hint)
        return norm.update(x)
    return normalize(x, x[:, lo:hi], form="paper", segment_samples=segment_samples,
                     ch_names=ch_names, where=where, hint=hint)


class CausalNormalizer:
    """The causal form, chunk by chunk (state + :meth:`update`).

    Parameters
    ----------
    n_channels : int
        Rows of every chunk.
    baseline_start, baseline_samples : int
        The baseline, in samples of the stream's own timeline (from its first sample).
    ch_names : sequence of str | None
        Channel names for messages.
    where, hint : str
        For messages.

    Attributes
    ----------
    n_seen : int
        Samples received so far (the stream's clock, in samples).
    stats : BaselineStats | None
        The baseline's statistics, once the baseline has ended.
    """

    def __init__(self, n_channels, baseline_start, baseline_samples, *, ch_names=None,
                 where="the stream", hint=_FIX_DEFAULT):
        self.n_channels = int(n_channels)
        self.baseline_start, self.baseline_stop = _check_baseline_span(baseline_start,
                                                                       baseline_samples)
        self.ch_names = ch_names
        self.where = where
        self.hint = hint
        self.n_seen = 0
        self.stats = None
        self._base = []

    @property
    def ready(self):
        """Whether the baseline has ended (later samples are normalised)."""
        return self.stats is not None

    def update(self, chunk):
        """Normalise the next samples of the stream.

        Parameters
        ----------
        chunk : ndarray, shape (n_channels, n_times)
            The samples following the previous chunk (any length, including 0 or 1).

        Returns
        -------
        out : ndarray of float64, shape (n_channels, n_times)
            Their causal form; NaN for samples up to the end of the baseline.

        Raises
        ------
        DataError
            The baseline, once complete, holds a flat channel.
        """
        x = np.asarray(chunk, dtype=np.float64)
        if x.ndim != 2 or x.shape[0] != self.n_channels:
            raise ParameterError(f"chunk must have shape ({self.n_channels}, n_times), got "
                                 f"{x.shape}; pass the stream's channels as rows.")
        t0, n = self.n_seen, x.shape[-1]
        out = np.full(x.shape, np.nan)
        if self.stats is None:
            lo = min(max(self.baseline_start - t0, 0), n)
            hi = min(max(self.baseline_stop - t0, 0), n)
            if hi > lo:
                self._base.append(x[:, lo:hi])
            if t0 + n >= self.baseline_stop:
                base = np.concatenate(self._base, axis=-1)
                self._base = []
                self.stats = baseline_stats(base, ch_names=self.ch_names, where=self.where,
                                            hint=self.hint)
        self.n_seen = t0 + n
        first = max(self.baseline_stop - t0, 0)
        if self.stats is not None and first < n:
            out[:, first:] = _causal(x[:, first:], self.stats)
        return out
