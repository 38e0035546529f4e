"""Data-quality telemetry computed while acquiring.

Dropped samples come from the board's package counter (from timestamp gaps when a source
has no counter; with a counter, a timestamp gap without missing counts is reported as a
gap, not as a loss); per-channel quality (railed, flat, line noise) is evaluated
on consecutive windows of ``window_s`` seconds. Every change becomes a
:class:`QualityEvent` that the recorder stores as an annotation, and :meth:`summary`
gives the totals for the sidecar JSON.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..utils._checks import check_number, check_sfreq


@dataclass
class QualityEvent:
    """One telemetry event.

    Attributes
    ----------
    onset_s : float
        Seconds from the first sample of the recording.
    description : str
        Short text stored as the annotation (``"DROP 12 samples"``, ``"RAILED Fz"``...).
    kind : str
        ``"drop"``, ``"gap"``, ``"railed"``, ``"flat"``, ``"line_noise"``, ``"ok"``,
        ``"stall"``, ``"reconnect"`` or ``"overflow"``.
    channel : str | None
        The channel concerned, if any.
    """

    onset_s: float
    description: str
    kind: str
    channel: str | None = None


class Telemetry:
    """Track dropped samples, gaps and per-channel quality of a stream.

    Parameters
    ----------
    sfreq : float
        Nominal sampling frequency in Hz.
    ch_names : list of str
        Channel names.
    physical_min, physical_max : float | None
        The device's range; a channel is *railed* when more than ``rail_fraction`` of a
        window sits within 1 % of either end.
    line_freq : float | None
        Mains frequency in Hz for the line-noise measure (``None`` skips it).
    rate_factor : float
        Playback speed (timestamps run this many times faster than real time).
    counter_modulo : int
        The package counter wraps at this value (256 for OpenBCI and the synthetic board).
    gap_s : float
        A step between host timestamps longer than this (seconds) is reported: as a gap
        when the package counter shows no loss, as dropped samples (estimated from the
        timestamps) when there is no counter.
    window_s : float
        Length of the quality windows in seconds.
    rail_fraction : float
        Fraction of a window at the rails that marks a channel railed.
    flat_ptp : float
        Peak-to-peak amplitude (in the data's unit) below which a window is flat.
    line_noise_max : float
        RMS amplitude at ``line_freq`` +- 1 Hz above which a channel is noisy.

    Attributes
    ----------
    channel_state : list of str
        Current state of each channel: ``"ok"``, ``"railed"``, ``"flat"`` or ``"noisy"``.
    line_noise : ndarray, shape (n_channels,)
        Line-noise RMS of the last window (NaN before the first window).
    """

    def __init__(self, sfreq, ch_names, *, physical_min=None, physical_max=None,
                 line_freq=None, rate_factor=1.0, counter_modulo=256, gap_s=0.25,
                 window_s=1.0, rail_fraction=0.5, flat_ptp=0.5, line_noise_max=20.0):
        self.sfreq = check_sfreq(sfreq)
        self.ch_names = list(ch_names)
        self.physical_min = physical_min
        self.physical_max = physical_max
        self.line_freq = line_freq
        self.rate_factor = check_number("rate_factor", rate_factor, low=0,
                                        low_inclusive=False)
        self.counter_modulo = check_number("counter_modulo", counter_modulo, low=2,
                                           integer=True)
        self.gap_s = check_number("gap_s", gap_s, low=0, low_inclusive=False)
        self.window_s = check_number("window_s", window_s, low=0, low_inclusive=False)
        self.rail_fraction = rail_fraction
        self.flat_ptp = flat_ptp
        self.line_noise_max = line_noise_max
        n = len(self.ch_names)
        self._window = max(2, int(round(self.window_s * self.sfreq)))
        self._buf = np.empty((n, self._window))
        self._fill = 0
        self._last_pkg = None
        self._step = None
        self._last_ts = None
        self._first_ts = None
        self.n_samples = 0
        self.dropped = 0
        self.n_drop_events = 0
        self.n_gaps = 0
        self.n_stalls = 0
        self.n_reconnects = 0
        self.n_overflow = 0
        self.channel_state = ["ok"] * n
        self.line_noise = np.full(n, np.nan)
        self._line_hist = []
        self._bad_windows = {k: np.zeros(n, int) for k in ("railed", "flat", "noisy")}
        self.n_windows = 0
        self.events = []

    # -------------------------------------------------------------------------------------
    def update(self, data, timestamps, package_num=None, first_sample=None):
        """Process a chunk and return the events it caused.

        Parameters
        ----------
        data : ndarray, shape (n_channels, n_times)
            Raw samples.
        timestamps : ndarray, shape (n_times,)
            Host time of each sample.
        package_num : ndarray, shape (n_times,) | None
            The board's package counter.
        first_sample : int | None
            Stream index of ``data[:, 0]`` (defaults to the samples seen so far).

        Returns
        -------
        events : list of QualityEvent
        """
        events = []
        n = data.shape[1]
        if n == 0:
            return events
        i0 = self.n_samples if first_sample is None else int(first_sample)
        seen_by_counter = np.zeros(n, bool)
        if package_num is not None:
            pkg = np.asarray(package_num, dtype=np.int64)
            prev = pkg[:1] - (self._step or 1) if self._last_pkg is None else [self._last_pkg]
            steps = np.diff(np.concatenate([prev, pkg])) % self.counter_modulo
            if self._step is None:
                vals, counts = np.unique(steps, return_counts=True)
                self._step = int(vals[np.argmax(counts)]) or 1
                steps[0] = self._step
            missing = np.rint(steps / self._step).astype(np.int64) - 1
            for i in np.flatnonzero(missing > 0):
                k = int(missing[i])
                seen_by_counter[i] = True
                events.append(self._drop(i0 + i, k))
            self._last_pkg = int(pkg[-1])
        ts = np.asarray(timestamps, dtype=np.float64)
        if self._first_ts is None:
            self._first_ts = ts[0]
        prev_ts = ts[:1] if self._last_ts is None else [self._last_ts]
        dts = np.diff(np.concatenate([prev_ts, ts]))  # host seconds
        for i in np.flatnonzero(dts > self.gap_s):
            if package_num is None:  # no counter: the timestamps are all we have
                k = int(round(dts[i] * self.rate_factor * self.sfreq)) - 1
                if k > 0:
                    events.append(self._drop(i0 + i, k))
            elif not seen_by_counter[i]:
                # The counter shows nothing missing: the host received the samples late
                # (or lost an exact multiple of the counter's period, which no counter
                # can tell apart); report the gap without guessing a loss.
                self.n_gaps += 1
                events.append(self._event(i0 + i, f"GAP {dts[i]:.2f} s", "gap"))
        self._last_ts = ts[-1]
        self.n_samples = i0 + n
        # quality windows
        pos = 0
        while pos < n:
            take = min(n - pos, self._window - self._fill)
            self._buf[:, self._fill:self._fill + take] = data[:, pos:pos + take]
            self._fill += take
            pos += take
            if self._fill == self._window:
                events.extend(self._assess(i0 + pos - self._window))
                self._fill = 0
        self.events.extend(events)
        return events

    def _event(self, sample, description, kind, channel=None):
        return QualityEvent(sample / self.sfreq, description, kind, channel)

    def _drop(self, sample, k):
        self.dropped += k
        self.n_drop_events += 1
        return self._event(sample, f"DROP {k} samples", "drop")

    def _assess(self, start):
        win = self._buf
        self.n_windows += 1
        state = np.array(["ok"] * len(self.ch_names), dtype=object)
        if self.line_freq is not None and self.line_freq < self.sfreq / 2:
            spec = np.fft.rfft(win - win.mean(axis=1, keepdims=True), axis=1)
            freqs = np.fft.rfftfreq(self._window, 1.0 / self.sfreq)
            sel = np.abs(freqs - self.line_freq) <= 1.0
            self.line_noise = np.sqrt(2.0 * np.sum(np.abs(spec[:, sel]) ** 2, axis=1)) \
                / self._window
            self._line_hist.append(self.line_noise.copy())
            state[self.line_noise > self.line_noise_max] = "noisy"
        ptp = np.ptp(win, axis=1)
        state[ptp < self.flat_ptp] = "flat"
        if self.physical_min is not None and self.physical_max is not None:
            margin = 0.01 * (self.physical_max - self.physical_min)
            at_rail = (win <= self.physical_min + margin) | (win >= self.physical_max - margin)
            state[at_rail.mean(axis=1) > self.rail_fraction] = "railed"
        events = []
        for c, (old, new) in enumerate(zip(self.channel_state, state, strict=True)):
            if new != "ok":
                self._bad_windows[new][c] += 1
            if new != old:
                name = self.ch_names[c]
                events.append(self._event(start, f"{new.upper()} {name}",
                                          "line_noise" if new == "noisy" else new, name))
        self.channel_state = list(state)
        return events

    def stall(self, sample, seconds):
        """Record that no data arrived for ``seconds`` (returns the event)."""
        self.n_stalls += 1
        ev = self._event(sample, f"STALL {seconds:.1f} s", "stall")
        self.events.append(ev)
        return ev

    def reconnect(self, sample, ok):
        """Record a reconnection attempt (returns the event)."""
        self.n_reconnects += 1
        ev = self._event(sample, "RECONNECT ok" if ok else "RECONNECT failed", "reconnect")
        self.events.append(ev)
        return ev

    def overflow(self, sample, k):
        """Record ``k`` samples lost because processing fell behind (returns the event)."""
        self.n_overflow += k
        self.dropped += k
        ev = self._event(sample, f"OVERFLOW {k} samples", "overflow")
        self.events.append(ev)
        return ev

    @property
    def achieved_sfreq(self):
        """Sampling rate achieved so far (from timestamps; NaN before two samples)."""
        if self._first_ts is None or self._last_ts is None or self._last_ts <= self._first_ts:
            return float("nan")
        return (self.n_samples - 1) / (self._last_ts - self._first_ts) / self.rate_factor

    def summary(self):
        """Return the telemetry totals as plain data (for the sidecar JSON)."""
        per_s = self.window_s
        line = np.nanmedian(np.array(self._line_hist), axis=0) if self._line_hist else None
        return {
            "n_samples": int(self.n_samples),
            "nominal_sfreq": self.sfreq,
            "achieved_sfreq": None if np.isnan(self.achieved_sfreq)
            else round(float(self.achieved_sfreq), 4),
            "dropped_samples": int(self.dropped),
            "drop_events": int(self.n_drop_events),
            "timestamp_gaps": int(self.n_gaps),
            "stalls": int(self.n_stalls),
            "reconnects": int(self.n_reconnects),
            "overflow_samples": int(self.n_overflow),
            "quality_windows": int(self.n_windows),
            "railed_s": {c: float(v * per_s) for c, v
                         in zip(self.ch_names, self._bad_windows["railed"], strict=True) if v},
            "flat_s": {c: float(v * per_s) for c, v
                       in zip(self.ch_names, self._bad_windows["flat"], strict=True) if v},
            "noisy_s": {c: float(v * per_s) for c, v
                        in zip(self.ch_names, self._bad_windows["noisy"], strict=True) if v},
            "line_noise_rms": None if line is None else
            {c: round(float(v), 4) for c, v in zip(self.ch_names, line, strict=True)},
            "events": len(self.events),
        }
