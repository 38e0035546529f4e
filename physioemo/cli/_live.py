"""Live HiSTN predictions for ``physioemo acquire --model`` (private to the CLI).

Each 1-s window of raw samples is mapped to the checkpoint's channels by name, resampled
to the model's rate and normalised like ``physioemo predict`` does offline, but causally:
z-scored with the mean and standard deviation of the first ``baseline_s`` seconds of the
stream, then divided by the running maximum absolute value of the current 60-s segment.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np

from ..exceptions import DataError, ParameterError


class LivePredictor:
    """Turn the latest raw window into a rating with a trained model.

    Parameters
    ----------
    model : torch.nn.Module
        Takes ``(batch, n_channels, n_times)`` float32 and returns logits.
    extra : dict | None
        The checkpoint's extras (``ch_names``, ``sfreq``, ``window_samples``,
        ``dimension``).
    ch_names : list of str
        The headset's channel names, in row order of the windows.
    sfreq : float
        The headset's sampling frequency in Hz.
    update_s : float
        Seconds between two calls (to time the baseline and the 60-s segments).
    baseline_s : float
        Length of the baseline at the start of the stream.
    segment_s : float
        Length of the max-abs normalisation segments.
    name : str
        How the checkpoint is named in messages.
    """

    def __init__(self, model, extra, ch_names, sfreq, *, update_s=0.25, baseline_s=10.0,
                 segment_s=60.0, name="the checkpoint"):
        from .predict import _norm

        extra = extra or {}
        self.model = model
        self.model_ch_names = list(extra.get("ch_names") or getattr(model, "ch_names", ()))
        if not self.model_ch_names:
            from ..datasets.dreamer import EEG_CHANNELS

            self.model_ch_names = list(EEG_CHANNELS)
        have = {_norm(c): i for i, c in enumerate(ch_names)}
        missing = [c for c in self.model_ch_names if _norm(c) not in have]
        if missing:
            raise DataError(f"{name} needs the channel(s) {missing} that this headset does "
                            f"not provide (it has {list(ch_names)}); the model was trained "
                            f"on {self.model_ch_names}; use a headset with those channels "
                            "(see `physioemo devices --name emotiv-epoc`) or a checkpoint "
                            "trained on this headset's channels.")
        self.index = [have[_norm(c)] for c in self.model_ch_names]
        self.sfreq = float(sfreq)
        self.model_sfreq = float(extra.get("sfreq", 128.0))
        self.window = int(extra.get("window_samples", 128))
        self.window_in = int(round(self.window * self.sfreq / self.model_sfreq))
        self.dimension = str(extra.get("dimension", "rating"))
        self.update_s = update_s
        self.baseline_s = baseline_s
        self.segment_s = segment_s
        ratio = Fraction(self.model_sfreq / self.sfreq).limit_denominator(1000)
        self._up, self._down = ratio.numerator, ratio.denominator
        self._t = 0.0
        self._base = []
        self._mu = self._sd = None
        self._peak = None
        self._segment = -1

    def _resample(self, x):
        if self._up == self._down:
            return x
        from scipy.signal import resample_poly

        return resample_poly(x, self._up, self._down, axis=-1)[:, -self.window:]

    def __call__(self, window):
        """Predict from ``window``, shape (n_headset_channels, >= window_in) raw samples.

        Returns
        -------
        prediction : dict
            ``{dimension: rating 1..K, "p": probability}``, or ``{"baseline": "3/10 s"}``
            while the baseline is being collected.
        """
        import torch

        if window.shape[1] < self.window_in:
            raise ParameterError(f"the live window holds {window.shape[1]} samples but the "
                                 f"model needs {self.window_in} ({self.window} at "
                                 f"{self.model_sfreq:g} Hz); use --window-s 1 or longer.")
        x = self._resample(np.asarray(window, float)[self.index, -self.window_in:])
        self._t += self.update_s
        if self._mu is None:
            self._base.append(x)
            if self._t < self.baseline_s:
                return {"baseline": f"{self._t:.1f}/{self.baseline_s:g} s"}
            base = np.concatenate(self._base, axis=1)
            self._mu = base.mean(axis=1, keepdims=True)
            self._sd = base.std(axis=1, keepdims=True)
            self._sd[self._sd == 0] = 1.0
            self._base = None
        z = (x - self._mu) / self._sd
        segment = int(self._t // self.segment_s)
        peak = np.abs(z).max(axis=1, keepdims=True)
        self._peak = peak if segment != self._segment else np.maximum(self._peak, peak)
        self._segment = segment
        z = z / np.where(self._peak > 0, self._peak, 1.0)
        with torch.no_grad():
            proba = torch.softmax(self.model(torch.from_numpy(z[None].astype(np.float32))),
                                  dim=-1)[0].numpy()
        k = int(proba.argmax())
        return {self.dimension: k + 1, "p": round(float(proba[k]), 2)}


def load_predictor(path, ch_names, sfreq, *, update_s=0.25):
    """Load a checkpoint and return a :class:`LivePredictor` for this headset."""
    import torch

    from ..models import load_checkpoint

    model, extra = load_checkpoint(path)
    predictor = LivePredictor(model, extra, ch_names, sfreq, update_s=update_s,
                              name=f"checkpoint {str(path)!r}")
    # one call now, before streaming starts: builds the native kernel on first use (~1 s)
    # and warms PyTorch up, so that the first live window is not late
    with torch.no_grad():
        model(torch.zeros(1, len(predictor.model_ch_names), predictor.window))
    return predictor
