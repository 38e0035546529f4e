"""Live prediction for ``physioemo acquire --model``, recorded beside the recording.

:class:`LivePredictor` receives every sample of the stream exactly once (the acquisition
loop calls it with the samples that arrived since the previous call, as the recording file
will hold them), normalises them with the ``"causal"`` form
(:class:`~physioemo.datasets.preprocessing.CausalNormalizer`; the baseline is the first
``baseline_s`` seconds of the recording, counted in samples) and predicts from the latest
window once the baseline has ended and a whole window lies after it. A checkpoint trained
with the ``"paper"`` form is refused: that form needs samples of the future.

Every prediction is appended to :class:`LivePredictionLog`, ``REC.live-predictions.csv``
beside the recording, with the sample index and time of the window's end in the
recording's own timeline and the checkpoint's identity; on a recording at the model's
rate, ``physioemo predict`` with the same checkpoint gives the same probabilities for the
windows that end at the same samples. At another rate the live window is resampled after
normalisation (polyphase, per window) while ``predict --resample`` resamples the whole
recording first (FFT): the numbers then differ slightly.
"""

from __future__ import annotations

import os
import time
from fractions import Fraction
from pathlib import Path

import numpy as np

from ..datasets.cache import file_sha256
from ..datasets.preprocessing import CausalNormalizer, checkpoint_form
from ..exceptions import DataError, ParameterError
from ..utils._checks import check_number
from ..utils.logging import logger
from .predict import ModelSpec, match_channels, predict_proba

#: Suffix of the live predictions file, beside the recording.
SUFFIX = ".live-predictions.csv"


def live_predictions_path(recording):
    """Return where the live predictions of ``recording`` go (``REC.live-predictions.csv``)."""
    recording = Path(recording)
    return recording.with_name(recording.stem + SUFFIX)


def checkpoint_identity(path, extra=None):
    """Return what identifies a checkpoint in a record: path, SHA-256, dimension, form.

    Parameters
    ----------
    path : str | Path
        The checkpoint file.
    extra : dict | None
        Its extras (for the dimension and the normalisation form).

    Returns
    -------
    identity : dict
        ``checkpoint`` (absolute path), ``checkpoint_sha256`` (of the file's bytes),
        ``dimension``, ``normalization``.
    """
    path = Path(path).resolve()
    return {"checkpoint": str(path), "checkpoint_sha256": file_sha256(path),
            "dimension": str((extra or {}).get("dimension", "rating")),
            "normalization": checkpoint_form(extra)}


class LivePredictionLog:
    """Append-only CSV of live predictions, flushed as each one is written.

    The file starts with ``# key: value`` lines (checkpoint identity, rates, baseline),
    then a CSV header ``end_sample, end_s, start_sample, p_rating1..K,
    predicted_rating`` and one row per prediction; a clean stop ends it with
    ``# complete: N predictions``, so a file without that line was cut by a crash (every
    row before it is whole). Read it with :func:`read_live_predictions`.

    Parameters
    ----------
    path : str | Path
        The CSV file (replaced only with ``force``).
    header : dict
        ``# key: value`` lines written first.
    n_classes : int
        Number of probability columns.
    force : bool
        Replace an existing file.
    fsync_interval_s : float
        Rows reach the disk (fsync) at least this often.
    """

    def __init__(self, path, header, n_classes, *, force=False, fsync_interval_s=1.0):
        self.path = Path(path)
        self.header = dict(header)
        self.n_classes = int(n_classes)
        self.force = force
        self.fsync_interval_s = fsync_interval_s
        self.n_rows = 0
        self._fid = None

    def open(self):
        """Create the file and write its header.

        Returns
        -------
        self : LivePredictionLog
        """
        self._fid = open(self.path, "w" if self.force else "x", encoding="utf-8")
        lines = [f"# {k}: {v}" for k, v in self.header.items()]
        cols = (["end_sample", "end_s", "start_sample"]
                + [f"p_rating{k + 1}" for k in range(self.n_classes)] + ["predicted_rating"])
        self._fid.write("\n".join([*lines, ",".join(cols)]) + "\n")
        self._sync()
        return self

    def _sync(self):
        self._fid.flush()
        os.fsync(self._fid.fileno())
        self._last_sync = time.monotonic()

    def write(self, end_sample, start_sample, sfreq, proba):
        """Append one prediction (flushed; fsync'ed at most every ``fsync_interval_s``)."""
        if self._fid is None:
            self.open()
        row = [str(int(end_sample)), f"{end_sample / sfreq:.6f}", str(int(start_sample))]
        row += [f"{v:.8f}" for v in proba] + [str(int(np.argmax(proba)) + 1)]
        self._fid.write(",".join(row) + "\n")
        self._fid.flush()
        self.n_rows += 1
        if time.monotonic() - self._last_sync >= self.fsync_interval_s:
            self._sync()

    def close(self):
        """Mark the file complete and close it (the header is written if nothing was)."""
        if self._fid is None:
            self.open()
        self._fid.write(f"# complete: {self.n_rows} predictions\n")
        self._sync()
        self._fid.close()
        self._fid = None


def read_live_predictions(path):
    """Read a :class:`LivePredictionLog` file.

    Parameters
    ----------
    path : str | Path
        The ``.live-predictions.csv`` file.

    Returns
    -------
    header : dict
        Its ``# key: value`` lines (``complete`` is present only for a clean stop).
    rows : list of dict
        One dict per prediction, values as strings (``csv.DictReader``).
    """
    import csv

    header, body = {}, []
    with open(path, encoding="utf-8") as fid:
        for line in fid:
            if line.startswith("# "):
                key, _, value = line[2:].rstrip("\n").partition(": ")
                header[key] = value
            elif line.strip():
                body.append(line)
    return header, list(csv.DictReader(body))


class LivePredictor:
    """Turn the stream into ratings with a checkpoint trained with the causal form.

    Parameters
    ----------
    model : torch.nn.Module
        Takes ``(batch, n_channels, n_times)`` float32 and returns logits.
    extra : dict | None
        The checkpoint's extras (``ch_names``, ``sfreq``, ``window_samples``,
        ``dimension``, ``normalization``).
    ch_names : list of str
        The headset's channel names, in row order of the chunks.
    sfreq : float
        The headset's sampling frequency in Hz.
    baseline_s : float
        Length of the baseline at the start of the recording, in seconds (rounded to
        whole samples at ``sfreq``).
    name : str
        How the checkpoint is named in messages.
    log : LivePredictionLog | None
        Where every prediction is appended.
    """

    def __init__(self, model, extra, ch_names, sfreq, *, baseline_s=10.0,
                 name="the checkpoint", log=None):
        spec = ModelSpec(model, extra)
        self.index, missing = match_channels(ch_names, spec.ch_names)
        if missing:
            raise DataError(f"{name} needs the channel(s) {missing} that this headset does "
                            f"not provide (it has {list(ch_names)}); the model was trained "
                            f"on {spec.ch_names}; use a headset with those channels "
                            "(see `physioemo devices --name emotiv-epoc`) or a checkpoint "
                            "trained on this headset's channels.")
        if spec.normalization != "causal":
            raise DataError(f"{name} was trained with the {spec.normalization!r} "
                            "normalisation, which scales each 60-s segment by its own peak "
                            "(future samples) and cannot be computed live; retrain with "
                            "`physioemo evaluate --normalization causal` for live "
                            "predictions, or apply this one offline with `physioemo "
                            "predict`.")
        self.model = model
        self.spec = spec
        self.model_ch_names = spec.ch_names
        self.dimension = spec.dimension
        self.sfreq = float(sfreq)
        self.model_sfreq = spec.sfreq
        self.window = spec.window_samples
        self.window_in = int(round(self.window * self.sfreq / self.model_sfreq))
        self.baseline_s = check_number("baseline_s", baseline_s, low=0, low_inclusive=False,
                                       hint="pass a baseline of a few seconds (--baseline-s, "
                                            "10 by default)")
        ratio = Fraction(self.model_sfreq / self.sfreq).limit_denominator(1000)
        self._up, self._down = ratio.numerator, ratio.denominator
        self.normalizer = CausalNormalizer(
            len(self.index), 0, max(2, int(round(self.baseline_s * self.sfreq))),
            ch_names=self.model_ch_names, where="the live recording's baseline",
            hint="fix that electrode and record again (the recording goes on without "
                 "live predictions)")
        self.log = log
        self.error = None
        self._last = None
        self._ring = np.full((len(self.index), self.window_in), np.nan)

    @property
    def n_seen(self):
        """Samples received so far (the recording's clock)."""
        return self.normalizer.n_seen

    def _resample(self, x):
        if self._up == self._down:
            return x
        from scipy.signal import resample_poly

        return resample_poly(x, self._up, self._down, axis=-1)[:, -self.window:]

    def __call__(self, chunk):
        """Take the samples that followed the previous call; predict from the latest window.

        Parameters
        ----------
        chunk : ndarray, shape (n_headset_channels, n_times)
            Every new sample, in order (as recorded).

        Returns
        -------
        prediction : dict
            ``{dimension: rating 1..K, "p": probability}``; ``{"baseline": "3.0/10 s"}``
            while the baseline is recorded and until a whole window follows it;
            ``{"predictions": "off (...)"}`` after a flat baseline channel.
        """
        if self.error is not None:
            return {"predictions": "off (flat baseline channel, see the log)"}
        chunk = np.asarray(chunk, dtype=np.float64)
        if chunk.ndim != 2 or chunk.shape[0] <= max(self.index):
            raise ParameterError(f"live chunk must have shape (n_headset_channels, n_times), "
                                 f"got {chunk.shape}; pass every channel of the headset.")
        try:
            z = self.normalizer.update(chunk[self.index])
        except DataError as err:
            self.error = str(err)
            logger.error("live predictions stopped: %s", err)
            return {"predictions": "off (flat baseline channel, see the log)"}
        n = z.shape[1]
        if n >= self.window_in:
            self._ring = z[:, -self.window_in:].copy()
        elif n:
            self._ring = np.concatenate([self._ring[:, n:], z], axis=1)
        end, stop = self.n_seen, self.normalizer.baseline_stop
        if n == 0 and self._last is not None:  # nothing new: one prediction per window
            return self._last
        if end < stop + self.window_in:
            done = min(end, stop) / self.sfreq
            return {"baseline": f"{done:.1f}/{self.baseline_s:g} s"}
        proba = predict_proba(self.model, self._resample(self._ring)[None])[0]
        if self.log is not None:
            self.log.write(end, end - self.window_in, self.sfreq, proba)
        k = int(proba.argmax())
        self._last = {self.dimension: k + 1, "p": round(float(proba[k]), 2)}
        return self._last

    def close(self):
        """Finish the predictions file; return what the recording's sidecar keeps of it.

        Returns
        -------
        info : dict
            The file's name and header, the number of predictions and any error.
        """
        info = {"n_predictions": 0, "error": self.error}
        if self.log is not None:
            self.log.close()
            info.update({"file": self.log.path.name, **self.log.header,
                         "n_predictions": self.log.n_rows})
        return info


def load_predictor(path, ch_names, sfreq, *, baseline_s=10.0, predictions=None,
                   force=False):
    """Load a checkpoint and return a :class:`LivePredictor` for this headset.

    Parameters
    ----------
    path : str | Path
        The checkpoint (trained with ``--normalization causal``).
    ch_names : list of str
        The headset's channels.
    sfreq : float
        The headset's rate, Hz.
    baseline_s : float
        The baseline at the start of the recording, seconds.
    predictions : str | Path | None
        Where every prediction is appended (:func:`live_predictions_path` of the
        recording); ``None`` keeps them in memory only.
    force : bool
        Replace an existing ``predictions`` file.

    Returns
    -------
    predictor : LivePredictor
    """
    from .. import models

    model, extra = models.load_checkpoint(path)
    predictor = LivePredictor(model, extra, ch_names, sfreq, baseline_s=baseline_s,
                              name=f"checkpoint {str(path)!r}")
    # one call now, before streaming starts: builds the native kernel on first use (~1 s),
    # warms PyTorch up (the first live window is not late) and gives the class count
    n_classes = predict_proba(model, np.zeros((1, len(predictor.model_ch_names),
                                               predictor.window)))[0].size
    if predictions is not None:
        header = {"physioemo": "live predictions", **checkpoint_identity(path, extra),
                  "sfreq": f"{predictor.sfreq:g}", "model_sfreq": f"{predictor.model_sfreq:g}",
                  "window_samples": str(predictor.window_in),
                  "baseline_samples": str(predictor.normalizer.baseline_stop),
                  "channels": " ".join(predictor.model_ch_names)}
        predictor.log = LivePredictionLog(predictions, header, n_classes, force=force)
    return predictor
