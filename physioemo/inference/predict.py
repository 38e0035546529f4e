"""Offline prediction: a checkpoint applied to a whole recording (``physioemo predict``).

Steps, in order: the checkpoint's channels are picked by name (:func:`channel_key`), the
recording is resampled to the model's rate only if asked, normalised with the checkpoint's
form (:func:`physioemo.datasets.preprocessing.normalize_recording`: ``"paper"`` max-abs
scales each 60-s segment; ``"causal"`` is NaN until the baseline has ended, so its windows
start there), cut into windows and passed through the model.
"""

from __future__ import annotations

import numpy as np

from ..datasets.preprocessing import checkpoint_form, normalize_recording
from ..exceptions import DataError

#: Length of the segments that the ``"paper"`` form max-abs scales (one DREAMER clip, 60 s).
SEGMENT_S = 60.0
#: Model rate, window and channels assumed for a checkpoint that does not record them.
DEFAULT_SFREQ = 128.0
DEFAULT_WINDOW_SAMPLES = 128


def channel_key(name):
    """Name used to match channels: upper case, no spaces, no "EEG" prefix or reference.

    Parameters
    ----------
    name : str
        A channel label, e.g. ``"EEG AF3-REF"``.

    Returns
    -------
    key : str
        E.g. ``"AF3"``.
    """
    name = name.upper().replace(" ", "")
    if name.startswith("EEG"):
        name = name[3:]
    for suffix in ("-REF", "-LE", "-AVG"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
    return name


def match_channels(have, want):
    """Row of each wanted channel among ``have`` (matched with :func:`channel_key`).

    Parameters
    ----------
    have : sequence of str
        Channels of the recording or headset, in row order.
    want : sequence of str
        Channels of the model, in its order.

    Returns
    -------
    index : list of int
        Row in ``have`` of each channel of ``want`` that is found.
    missing : list of str
        Channels of ``want`` that ``have`` lacks.
    """
    rows = {channel_key(c): i for i, c in enumerate(have)}
    missing = [c for c in want if channel_key(c) not in rows]
    return [rows[channel_key(c)] for c in want if channel_key(c) in rows], missing


class ModelSpec:
    """What a checkpoint says about its inputs.

    Parameters
    ----------
    model : torch.nn.Module
        The loaded model.
    extra : dict | None
        The checkpoint's extras.

    Attributes
    ----------
    ch_names : list of str
        Channels, in the model's order.
    sfreq : float
        Rate the model was trained at, Hz.
    window_samples : int
        Samples per window at ``sfreq``.
    dimension : str
        What it predicts (``"valence"``...).
    normalization : {"paper", "causal"}
        The form it was trained with (``"paper"`` for checkpoints that predate the forms).
    """

    def __init__(self, model, extra):
        from ..datasets.dreamer import EEG_CHANNELS

        extra = extra or {}
        self.ch_names = list(extra.get("ch_names") or getattr(model, "ch_names", None)
                             or EEG_CHANNELS)
        self.sfreq = float(extra.get("sfreq", DEFAULT_SFREQ))
        self.window_samples = int(extra.get("window_samples", DEFAULT_WINDOW_SAMPLES))
        self.dimension = str(extra.get("dimension", "rating"))
        self.normalization = checkpoint_form(extra)


def predict_proba(model, windows, *, batch_size=1024):
    """Class probabilities of each window.

    Parameters
    ----------
    model : torch.nn.Module
        Returns logits for ``(batch, n_channels, n_times)`` float32 input.
    windows : ndarray, shape (n_windows, n_channels, n_times)
        Normalised windows (cast to float32).
    batch_size : int
        Windows per forward pass.

    Returns
    -------
    proba : ndarray of float32, shape (n_windows, n_classes)
    """
    import torch

    x = np.ascontiguousarray(windows, dtype=np.float32)
    with torch.no_grad():
        parts = [torch.softmax(model(torch.from_numpy(x[i:i + batch_size])), dim=-1)
                 for i in range(0, len(x), batch_size)]
    return torch.cat(parts).numpy()


def normalize_for(spec, data, *, baseline_start_s=0.0, baseline_s=10.0, where="the recording"):
    """Normalise a recording (at the model's rate) with the checkpoint's form.

    Parameters
    ----------
    spec : ModelSpec
        The checkpoint's description.
    data : ndarray, shape (n_channels, n_times)
        The recording, channels in the model's order, at ``spec.sfreq``.
    baseline_start_s, baseline_s : float
        The baseline segment, in seconds from the first sample.
    where : str
        The recording, for messages.

    Returns
    -------
    x : ndarray of float64, shape (n_channels, n_times)
        Normalised; NaN up to the baseline's end with the causal form.
    first : int
        First sample that a window may start at (the baseline's end for causal, else 0).
    """
    lo = int(round(baseline_start_s * spec.sfreq))
    n = int(round(baseline_s * spec.sfreq))
    if lo < 0 or n < 2 or lo + n > data.shape[-1]:
        raise DataError(f"baseline {baseline_start_s}..{baseline_start_s + baseline_s} s is not "
                        f"inside {where} (0..{data.shape[-1] / spec.sfreq:.1f} s); choose "
                        "--baseline-start/--baseline-seconds inside it.")
    hint = ("choose another --baseline-start/--baseline-seconds where that channel carries "
            "signal, or repair the electrode and record again")
    x = normalize_recording(data, lo, n, form=spec.normalization,
                            segment_samples=int(round(SEGMENT_S * spec.sfreq)),
                            ch_names=spec.ch_names, where=where, hint=hint)
    return x, (lo + n if spec.normalization == "causal" else 0)


def read_recording(edf, spec, *, resample=False):
    """Read an EDF/EDF+ file's model channels, resampled to the model's rate if asked.

    Parameters
    ----------
    edf : Path
        The recording.
    spec : ModelSpec
        The checkpoint's description.
    resample : bool
        Resample a recording at another rate (refused otherwise).

    Returns
    -------
    data : ndarray of float64, shape (n_channels, n_times)
        The model's channels, in its order, at ``spec.sfreq``.
    """
    import mne

    from ..utils._checks import check_resample

    try:
        raw = mne.io.read_raw_edf(edf, preload=True, verbose="error")
    except Exception as err:  # mne raises several types for a bad file
        raise DataError(f"could not read {str(edf)!r} as EDF ({type(err).__name__}: {err}); "
                        "pass an EDF/EDF+ file.") from None
    index, missing = match_channels(raw.ch_names, spec.ch_names)
    if missing:
        raise DataError(f"{str(edf)!r} lacks the channel(s) {missing} the model was trained "
                        f"on (it has {raw.ch_names}); the recording must hold "
                        f"{spec.ch_names}; record or rename those channels.")
    raw.pick([raw.ch_names[i] for i in index])
    if check_resample(repr(edf.name), raw.info["sfreq"], spec.sfreq, resample=resample):
        raw.resample(spec.sfreq, verbose="error")
    # MNE returns volts for a uV channel: the normalisation is scale-free, so it does not
    # matter that the model was trained on uV
    return raw.get_data()


def predict_recording(model, extra, data, *, baseline_start_s=0.0, baseline_s=10.0,
                      step_s=1.0, where="the recording"):
    """Per-window class probabilities of a recording.

    Parameters
    ----------
    model : torch.nn.Module
        The checkpoint's model.
    extra : dict | None
        The checkpoint's extras.
    data : ndarray, shape (n_channels, n_times)
        The model's channels at its rate (:func:`read_recording`).
    baseline_start_s, baseline_s : float
        The baseline segment, seconds.
    step_s : float
        Seconds between window starts (rounded to whole samples, at least 1).
    where : str
        The recording, for messages.

    Returns
    -------
    starts : ndarray of int64, shape (n_windows,)
        First sample of each window (at the model's rate).
    proba : ndarray of float32, shape (n_windows, n_classes)
        Class probabilities.
    """
    spec = ModelSpec(model, extra)
    window = spec.window_samples
    x, first = normalize_for(spec, data, baseline_start_s=baseline_start_s,
                             baseline_s=baseline_s, where=where)
    if x.shape[-1] - first < window:
        after = " after the baseline (causal form)" if first else ""
        raise DataError(f"{where} holds {x.shape[-1] - first} samples{after}, fewer than one "
                        f"window ({window}); pass a longer recording.")
    step = max(1, int(round(step_s * spec.sfreq)))
    starts = np.arange(first, x.shape[-1] - window + 1, step, dtype=np.int64)
    view = np.lib.stride_tricks.sliding_window_view(x, window, axis=-1)
    windows = view[:, starts].transpose(1, 0, 2)
    return starts, predict_proba(model, windows)


def predict_edf(checkpoint, edf, *, baseline_start_s=0.0, baseline_s=10.0, step_s=1.0,
                resample=False):
    """Apply a checkpoint to an EDF recording (what ``physioemo predict`` computes).

    Parameters
    ----------
    checkpoint, edf : Path
        The model and the recording.
    baseline_start_s, baseline_s, step_s : float
        See :func:`predict_recording`.
    resample : bool
        See :func:`read_recording`.

    Returns
    -------
    result : dict
        ``start_s`` (ndarray, shape (n_windows,)), ``start_sample``, ``proba`` (ndarray,
        shape (n_windows, n_classes)), ``spec`` (:class:`ModelSpec`).
    """
    from .. import models

    model, extra = models.load_checkpoint(checkpoint)
    spec = ModelSpec(model, extra)
    data = read_recording(edf, spec, resample=resample)
    if data.shape[-1] < spec.window_samples:
        raise DataError(f"{str(edf)!r} holds {data.shape[-1]} samples after resampling, fewer "
                        f"than one window ({spec.window_samples}); pass a longer recording.")
    starts, proba = predict_recording(model, extra, data, baseline_start_s=baseline_start_s,
                                      baseline_s=baseline_s, step_s=step_s,
                                      where=repr(edf.name))
    return {"start_sample": starts, "start_s": starts / spec.sfreq, "proba": proba,
            "spec": spec}


def write_predictions(path, result):
    """Write :func:`predict_edf`'s result as CSV, whole, then renamed into place.

    Parameters
    ----------
    path : Path
        Output CSV: ``window, start_s, p_rating1..K, predicted_rating``.
    result : dict
        From :func:`predict_edf`.
    """
    import csv
    import io

    from ..utils.config import atomic_write_text

    proba = result["proba"]
    fid = io.StringIO()  # written whole, then renamed: --force never leaves half a file
    writer = csv.writer(fid)
    writer.writerow(["window", "start_s"] + [f"p_rating{k + 1}" for k in range(proba.shape[1])]
                    + ["predicted_rating"])
    for i, (s, p) in enumerate(zip(result["start_s"], proba, strict=True)):
        writer.writerow([i, f"{s:.3f}"] + [f"{v:.6f}" for v in p] + [int(p.argmax()) + 1])
    atomic_write_text(path, fid.getvalue())
