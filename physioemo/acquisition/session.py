"""The acquisition loop: device -> ring buffer -> recorder, telemetry, online features.

A reader thread drains the source into a :class:`RingBuffer` sized for the worst stall;
the main loop records the raw samples, runs the telemetry, applies the stateful
:class:`~physioemo.dsp.StreamingFilter` (notch + band-pass) and feeds
:class:`~physioemo.dsp.OnlineBandPower` at ``update_s`` intervals -- the same code as the
offline functions -- and places markers on the samples they belong to.
"""

from __future__ import annotations

import math
import signal
import threading
import time
from collections import deque

import numpy as np

from ..exceptions import DataError, DeviceError, PhysioEmoError
from ..utils._checks import check_number, check_option
from ..utils.logging import logger
from .markers import MarkerHub
from .ringbuffer import RingBuffer
from .telemetry import Telemetry


class Acquisition:
    """Run a source until a duration, a stop request or the end of its data.

    Parameters
    ----------
    source : Source
        Where samples come from (not started yet).
    recorder : Recorder | None
        Where raw samples and annotations go (started on the first sample).
    l_freq, h_freq : float | None
        Band-pass of the online filter in Hz.
    notch : float | sequence of float | None
        Line frequencies removed online; ``"auto"`` uses the source's ``line_freq``.
    order : int
        Butterworth order of the online filter.
    bands : mapping | None
        Bands of the online band power (``None``: :data:`physioemo.dsp.FREQ_BANDS`).
    kind : {"power", "de"}
        Band power or differential entropy online.
    window_s : float
        Window of the online band power in seconds.
    update_s : float
        How often the band power (and predictions) are updated, in seconds.
    listeners : list
        Marker listeners (see :mod:`physioemo.acquisition.markers`) feeding ``hub``.
    hub : MarkerHub | None
        The hub the listeners feed (created if ``None``).
    view : object | None
        Live view with ``start()``, ``update(state)`` and ``stop()``.
    stall_s : float
        No data for this long is a stall: reconnect, then stop cleanly.
    max_reconnects : int
        Reconnection attempts per stall before giving up.
    ring_s : float
        Capacity of the ring buffer in seconds of data.
    poll_s : float
        Sleep of the reader and main loops when idle.
    on_update : callable | None
        ``on_update(filtered, features)`` after each band-power update (``features`` is
        ``None`` before the first full window); gets every filtered sample exactly once.
    predictor : callable | None
        ``predictor(chunk)`` -> dict, called at each update with the raw samples that
        arrived since the previous call (n_channels, n_times), so that it sees every
        sample exactly once, as the recording file holds them (clipped and quantised by
        ``recorder.as_stored``); it keeps its own window and clock (e.g.
        :class:`physioemo.inference.live.LivePredictor`). If it has a ``close()`` method,
        its return value is kept in the summary and the sidecar as ``live_predictions``.
    outlet : object | None
        ``push(filtered, timestamps)`` and ``push_features(features)`` (LSL outlets).
    telemetry_kwargs : dict | None
        Extra arguments of :class:`Telemetry`.

    Attributes
    ----------
    latencies_s : list of float
        Processing time of each chunk handled by the main loop.
    """

    def __init__(self, source, recorder=None, *, l_freq=1.0, h_freq=45.0, notch="auto",
                 order=4, bands=None, kind="power", window_s=1.0, update_s=0.25,
                 listeners=(), hub=None, view=None, stall_s=2.0, max_reconnects=3,
                 ring_s=120.0, poll_s=0.01, on_update=None, predictor=None, outlet=None,
                 telemetry_kwargs=None):
        self.source = source
        self.recorder = recorder
        self.l_freq = l_freq
        self.h_freq = h_freq
        self.notch = notch
        self.order = order
        self.bands = bands
        self.kind = kind
        self.window_s = window_s
        self.update_s = update_s
        self.listeners = list(listeners)
        self.hub = hub if hub is not None else MarkerHub()
        self.view = view
        self.stall_s = stall_s
        self.max_reconnects = max_reconnects
        self.ring_s = ring_s
        self.poll_s = poll_s
        self.on_update = on_update
        self.predictor = predictor
        self.outlet = outlet
        self.telemetry_kwargs = telemetry_kwargs
        self.stop_event = threading.Event()
        self.latencies_s = []
        self.markers = []

    # -- setup ------------------------------------------------------------------------------
    def _setup(self):
        from ..dsp import OnlineBandPower, StreamingFilter

        src = self.source
        check_option("kind", self.kind, ("power", "de"))
        check_number("update_s", self.update_s, low=0, low_inclusive=False)
        check_number("stall_s", self.stall_s, low=0, low_inclusive=False)
        self.sfreq = float(src.sfreq)
        self.n_channels = src.n_channels
        notch = getattr(src, "line_freq", None) if self.notch == "auto" else self.notch
        if notch is not None and np.max(np.atleast_1d(notch)) >= self.sfreq / 2:
            notch = None
        self.notch_ = notch
        self.filter = StreamingFilter(self.sfreq, self.n_channels, l_freq=self.l_freq,
                                      h_freq=self.h_freq, notch=notch, order=self.order)
        self.filter.reset()
        self.window_samples = max(2, int(round(self.window_s * self.sfreq)))
        self.bandpower = OnlineBandPower(self.sfreq, self.n_channels, self.window_samples,
                                         bands=self.bands, kind=self.kind)
        self.bandpower.reset()
        self._update_samples = max(1, int(round(self.update_s * self.sfreq)))
        self.telemetry = Telemetry(
            self.sfreq, src.ch_names, physical_min=getattr(src, "physical_min", None),
            physical_max=getattr(src, "physical_max", None), line_freq=notch and float(
                np.atleast_1d(notch)[0]),
            rate_factor=getattr(src, "rate_factor", 1.0), **(self.telemetry_kwargs or {}))
        self.ring = RingBuffer(self.n_channels + 2,
                               max(1, int(self.ring_s * self.sfreq * self.telemetry.rate_factor)))
        self.n_done = 0
        self._pending_filtered = []
        self._pending_raw = []
        self._n_pending = 0
        self._ts_hist = deque()
        self._pending_markers = []
        self.features = None
        self.prediction = None
        self._reader_error = None
        self._reader_done = threading.Event()
        self._events = deque(maxlen=8)
        self._recording = False

    # -- reader thread ----------------------------------------------------------------------
    def _reader(self):
        src = self.source
        last_data = time.monotonic()
        try:
            while not self._stop_reader.is_set():
                chunk = src.read()
                n = chunk.n_times
                if n:
                    block = np.empty((self.n_channels + 2, n))
                    block[:-2] = chunk.data
                    block[-2] = chunk.timestamps
                    block[-1] = np.nan if chunk.package_num is None else chunk.package_num
                    self.ring.push(block)
                    last_data = time.monotonic()
                    continue
                if src.exhausted:
                    return
                idle = time.monotonic() - last_data
                if idle >= self.stall_s:
                    self._stall(idle)
                    last_data = time.monotonic()
                time.sleep(self.poll_s)
        except BaseException as err:  # noqa: BLE001 - handed to the main thread
            self._reader_error = err
        finally:
            self._reader_done.set()

    def _stall(self, idle):
        sample = self.ring.n_pushed
        self._stall_events.append(self.telemetry.stall(sample, idle))
        logger.warning("no data from %s for %.1f s; reconnecting", self.source_name, idle)
        for attempt in range(1, self.max_reconnects + 1):
            ok = self.source.reconnect()
            self._stall_events.append(self.telemetry.reconnect(sample, ok))
            if ok:
                deadline = time.monotonic() + self.stall_s
                while time.monotonic() < deadline and not self._stop_reader.is_set():
                    chunk = self.source.read()
                    if chunk.n_times:
                        block = np.empty((self.n_channels + 2, chunk.n_times))
                        block[:-2] = chunk.data
                        block[-2] = chunk.timestamps
                        block[-1] = np.nan if chunk.package_num is None else chunk.package_num
                        self.ring.push(block)
                        logger.info("reconnected after attempt %d", attempt)
                        return
                    time.sleep(self.poll_s)
        raise DeviceError(f"{self.source_name} sent no data for {idle:.1f} s and "
                          f"{self.max_reconnects} reconnection attempts failed; the "
                          "recording was stopped and kept; check the device's power, "
                          "battery and connection.")

    # -- main loop -------------------------------------------------------------------------
    def run(self, duration_s=None):
        """Acquire until a duration, :attr:`stop_event`, Ctrl-C or the end of a file.

        Parameters
        ----------
        duration_s : float | None
            Seconds of data to acquire (exactly ``round(duration_s * sfreq)`` samples);
            ``None`` runs until stopped.

        Returns
        -------
        summary : dict
            Telemetry summary, sample counts, markers and the recording path.
        """
        self._setup()
        if duration_s is not None:
            check_number("duration_s", duration_s, low=0, low_inclusive=False,
                         hint="pass a positive --duration in seconds")
        target = None if duration_s is None else int(round(duration_s * self.sfreq))
        self.source_name = getattr(self.source, "device", None)
        self.source_name = getattr(self.source_name, "name", type(self.source).__name__)
        self._stop_reader = threading.Event()
        self._stall_events = deque()
        started = []
        error = None
        old_handler = None
        if threading.current_thread() is threading.main_thread():
            old_handler = signal.signal(signal.SIGINT, self._sigint)
        stopping = False
        stop_deadline = None
        try:
            for lst in self.listeners:
                lst.start()
                started.append(lst)
            if self.outlet is not None:
                self.outlet.start(list(self.bandpower.band_names))
            self.source.start()
            self.t_start = time.monotonic()
            reader = threading.Thread(target=self._reader, name="acquisition-reader",
                                      daemon=True)
            reader.start()
            if self.view is not None:
                self.view.start()
            last_view = 0.0
            quit_flags = [getattr(lst, "quit_requested", None) for lst in self.listeners]
            while True:
                try:
                    block = self.ring.pop()
                    if block.shape[1]:
                        if target is not None:
                            block = block[:, :max(0, target - self.n_done)]
                        self._process(block)
                    while self._stall_events:
                        self._annotate(self._stall_events.popleft())
                    if target is not None and self.n_done >= target:
                        break
                    if self._reader_done.is_set() and len(self.ring) == 0:
                        if self._reader_error is not None:
                            raise self._reader_error
                        break  # the file is exhausted
                    if not stopping and (self.stop_event.is_set() or any(
                            f is not None and f.is_set() for f in quit_flags)):
                        raise KeyboardInterrupt
                    if stopping and time.monotonic() > stop_deadline:
                        break
                    now = time.monotonic()
                    if self.view is not None and now - last_view >= 0.25:
                        self.view.update(self.state())
                        last_view = now
                    if not block.shape[1]:
                        if self._recording:  # keep the once-per-second fsync during stalls
                            self.recorder.flush_if_due()
                        time.sleep(self.poll_s)
                except KeyboardInterrupt:
                    if stopping:
                        break
                    # finish the current 1-s data record so that nothing is padded
                    stopping = True
                    rec = int(round(self.sfreq))
                    boundary = max(rec, math.ceil(self.n_done / rec) * rec)
                    target = boundary if target is None else min(target, boundary)
                    stop_deadline = time.monotonic() + 1.5 / self.telemetry.rate_factor
                    logger.info("stopping at %.0f s of data", target / self.sfreq)
        except PhysioEmoError as err:
            error = err
        finally:
            if old_handler is not None:
                signal.signal(signal.SIGINT, old_handler)
            self._stop_reader.set()
            if "reader" in locals():
                reader.join(timeout=5.0)
            self.source.stop()
            if self._pending_filtered:  # the last samples, shorter than an update
                self._update()
            for lst in started:
                lst.stop()
            if self.view is not None:
                self.view.stop()
            if self.outlet is not None:
                self.outlet.stop()
            summary = self._finish()
        if error is not None:
            raise error
        return summary

    def _sigint(self, signum, frame):
        # First Ctrl-C: stop cleanly at the next record boundary; second: stop now.
        if self.stop_event.is_set():
            raise KeyboardInterrupt
        self.stop_event.set()

    def _process(self, block):
        t0 = time.perf_counter()
        n_ch = self.n_channels
        data = np.ascontiguousarray(block[:n_ch])
        ts = block[n_ch]
        pkg = None if np.isnan(block[n_ch + 1, 0]) else block[n_ch + 1]
        n = data.shape[1]
        if n == 0:
            return
        if self.ring.n_overflow > self.telemetry.n_overflow:
            k = self.ring.n_overflow - self.telemetry.n_overflow
            self._annotate(self.telemetry.overflow(self.n_done, k))
        if self.recorder is not None and not self._recording:
            self.recorder.start(start_time=float(ts[0]))
            self._recording = True
        if self.recorder is not None:
            self.recorder.write(data)
        for ev in self.telemetry.update(data, ts, pkg, first_sample=self.n_done):
            self._annotate(ev)
        filtered = self.filter.process(data)
        self._pending_filtered.append(filtered)
        self._n_pending += n
        if self.predictor is not None:  # every sample, as the file will hold it
            self._pending_raw.append(data if self.recorder is None
                                     else self.recorder.as_stored(data))
        self._ts_hist.append((self.n_done, ts))
        while len(self._ts_hist) > 1 and ts[-1] - self._ts_hist[0][1][-1] > 30.0:
            self._ts_hist.popleft()
        self.n_done += n
        if self.outlet is not None:
            self.outlet.push(filtered, ts)
        if self._n_pending >= self._update_samples:
            self._update()
        self._place_markers(final=False)
        self.latencies_s.append(time.perf_counter() - t0)

    def _update(self):
        """Band power (and prediction) on the filtered samples waiting since the last one."""
        chunk = np.concatenate(self._pending_filtered, axis=1) \
            if len(self._pending_filtered) > 1 else self._pending_filtered[0]
        self._pending_filtered, self._n_pending = [], 0
        self.features = self.bandpower.update(chunk)
        if self.features is not None and self.outlet is not None:
            self.outlet.push_features(self.features)
        if self.predictor is not None and self._pending_raw:
            raw = np.concatenate(self._pending_raw, axis=1)
            self._pending_raw = []
            self.prediction = self.predictor(raw)
        if self.on_update is not None:
            self.on_update(chunk, self.features)

    def _annotate(self, event):
        self._events.append(f"{event.onset_s:7.1f} s  {event.description}")
        if self.recorder is not None and self._recording:
            self.recorder.annotate(event.onset_s, event.description)
        if event.kind in ("drop", "stall", "overflow", "railed", "flat", "reconnect"):
            logger.warning("%s at %.1f s", event.description, event.onset_s)

    def _samples_at(self, times):
        """Index of the sample whose timestamp is nearest to each host time in ``times``."""
        times = np.asarray(times, dtype=float)
        if not self._ts_hist:
            return np.zeros(times.size, dtype=np.int64)
        idx = np.concatenate([np.arange(f, f + ts.size) for f, ts in self._ts_hist])
        all_ts = np.concatenate([ts for _, ts in self._ts_hist])
        rate = self.sfreq * self.telemetry.rate_factor
        i = np.searchsorted(all_ts, times)
        inner = np.clip(i, 1, all_ts.size - 1)
        if all_ts.size > 1:
            nearer_left = times - all_ts[inner - 1] < all_ts[inner] - times
            out = idx[np.where(nearer_left, inner - 1, inner)]
        else:
            out = np.full(times.size, idx[0])
        before = np.maximum(0, np.round(idx[0] - (all_ts[0] - times) * rate))
        after = np.round(idx[-1] + (times - all_ts[-1]) * rate)
        out = np.where(i == 0, before, np.where(i == all_ts.size, after, out))
        return out.astype(np.int64)

    def _place_markers(self, final):
        self._pending_markers.extend(self.hub.drain())
        if not self._pending_markers or not self._ts_hist:
            return
        last_t = self._ts_hist[-1][1][-1]
        due = [m for m in self._pending_markers if final or m.host_time <= last_t]
        self._pending_markers = [m for m in self._pending_markers
                                 if not (final or m.host_time <= last_t)]
        if not due:
            return
        onsets = np.minimum(self._samples_at([m.host_time for m in due]),
                            max(0, self.n_done - 1)) / self.sfreq
        for m, onset in zip(due, onsets.tolist(), strict=True):
            self.markers.append({"onset": onset, "description": m.text, "origin": m.origin,
                                 "host_time": m.host_time})
            if self.recorder is not None and self._recording:
                self.recorder.annotate(onset, m.text, origin=m.origin,
                                       host_time=m.host_time, raw=m.raw)
        for m, onset in list(zip(due, onsets.tolist(), strict=True))[-8:]:
            text = m.text if len(m.text) <= 40 else m.text[:37] + "..."
            self._events.append(f"{onset:7.1f} s  marker {text!r} ({m.origin})")

    def _finish(self):
        try:
            self._place_markers(final=True)
        except PhysioEmoError as err:
            logger.warning("markers not stored: %s", err)
        lat = np.array(self.latencies_s) if self.latencies_s else np.zeros(1)
        summary = {
            "n_times": int(self.n_done), "duration_s": self.n_done / self.sfreq,
            "telemetry": self.telemetry.summary(), "n_markers": len(self.markers),
            "markers": self.markers,
            "events": [{"onset": e.onset_s, "description": e.description, "kind": e.kind}
                       for e in self.telemetry.events[:1000]],
            "online": {"l_freq": self.l_freq, "h_freq": self.h_freq,
                       "notch": self.notch_, "order": self.order, "kind": self.kind,
                       "window_s": self.window_s, "update_s": self.update_s},
            "chunk_latency_ms": {"median": float(np.median(lat) * 1e3),
                                 "p99": float(np.percentile(lat, 99) * 1e3),
                                 "n_chunks": len(self.latencies_s)},
            "source": self.source.info(),
            "markers_lost_in_transport": self._transport_losses(),
        }
        close = getattr(self.predictor, "close", None)
        if close is not None:
            summary["live_predictions"] = close()
        self.summary = summary
        if self.recorder is not None and self._recording:
            try:
                summary["file"] = str(self.recorder.close(metadata={
                    "telemetry": summary["telemetry"], "online": summary["online"],
                    "events": summary["events"], "source": summary["source"],
                    "markers_lost_in_transport": summary["markers_lost_in_transport"],
                    **({"live_predictions": summary["live_predictions"]}
                       if "live_predictions" in summary else {})}))
            except DataError:
                self.recorder.abort()
                raise
        return summary

    def _transport_losses(self):
        """Markers the operating system dropped before a listener read them (UDP)."""
        lost = {lst.origin: lst.n_lost for lst in self.listeners
                if getattr(lst, "n_lost", None)}
        for origin, n in lost.items():
            logger.warning("at least %d %s markers were dropped by the operating system "
                           "before physioemo could read them (the sender was faster than "
                           "the reader and %s has no flow control); send bursts over TCP",
                           n, origin.upper(), origin.upper())
        return lost

    def state(self):
        """Return a snapshot for the live view."""
        tel = self.telemetry
        return {
            "source": self.source_name, "sfreq": self.sfreq,
            "achieved_sfreq": tel.achieved_sfreq, "n_times": self.n_done,
            "elapsed_s": self.n_done / self.sfreq, "dropped": tel.dropped,
            "stalls": tel.n_stalls, "ch_names": list(self.source.ch_names),
            "channel_state": list(tel.channel_state), "line_noise": tel.line_noise,
            "band_names": list(self.bandpower.band_names), "features": self.features,
            "kind": self.kind, "events": list(self._events), "prediction": self.prediction,
            "file": str(self.recorder.path) if self.recorder is not None else None,
            "buffered": len(self.ring),
        }
