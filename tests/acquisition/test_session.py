"""The acquisition loop end to end on BrainFlow's synthetic board (10 s -> EDF+ -> MNE)."""

import json
import time

import mne
import numpy as np
import pytest
from scipy.signal import sosfilt, sosfilt_zi

from physioemo.acquisition.base import Source
from physioemo.acquisition.recorder import journal_path, sidecar_path
from physioemo.dsp import FREQ_BANDS, band_power, design_sos

SFREQ = 250.0
N = 2500
STEP = 4000.0 / 65535  # EDF quantisation step of the synthetic profile's +-2000 uV range


def _causal(sos, x):
    """scipy's causal filter started in steady state at the first sample."""
    zi = sosfilt_zi(sos)[:, None, :] * x[None, :, :1]
    return sosfilt(sos, x, axis=-1, zi=zi)[0]


@pytest.fixture(scope="module")
def raw_edf(synthetic_recording):
    return mne.io.read_raw_edf(synthetic_recording["path"], preload=True, verbose="error")


def test_mne_reads_the_same_samples(synthetic_recording, raw_edf):
    assert raw_edf.info["sfreq"] == SFREQ
    assert raw_edf.n_times == N  # exactly 10 s: whole data records, no padding
    assert raw_edf.ch_names == ["Fz", "C3", "Cz", "C4", "Pz", "PO7", "Oz", "PO8",
                                "F5", "F7", "F3", "F1", "F2", "F4", "F6", "F8"]
    truth = synthetic_recording["raw"][:, :N]
    got = raw_edf.get_data() * 1e6  # MNE gives volts, the board microvolts
    err = np.abs(got - truth)
    assert err.max() <= STEP / 2 + 1e-6
    assert err.max() > 0  # it did go through 16-bit quantisation
    assert not journal_path(synthetic_recording["path"]).exists()


def test_markers_land_on_the_samples_they_were_sent_at(synthetic_recording, raw_edf):
    ts = synthetic_recording["timestamps"][:N]
    ann = raw_edf.annotations
    assert len(synthetic_recording["sent"]) == 3
    for text, sent_at in synthetic_recording["sent"]:
        onsets = ann.onset[ann.description == text]
        assert onsets.size == 1, (text, list(ann.description))
        # the sample the board stamped closest to the send time (the listener stamps the
        # arrival, a few ms later; allow for scheduling delays on a busy machine)
        expected = np.argmin(np.abs(ts - sent_at)) / SFREQ
        assert -0.01 < onsets[0] - expected < 0.1
        assert abs(onsets[0] - (sent_at - ts[0])) < 0.15


def test_online_filter_equals_offline_on_the_recording(synthetic_recording, raw_edf):
    online = np.concatenate([f for f, _ in synthetic_recording["updates"]], axis=1)
    n = online.shape[1]
    assert n == N  # every filtered sample went through exactly one update
    sos = design_sos(SFREQ, 1.0, 45.0, order=4, notch=50.0)
    truth = synthetic_recording["raw"][:, :N]
    offline = _causal(sos, truth)
    np.testing.assert_allclose(online, offline[:, :n], rtol=0, atol=1e-9)
    rec = raw_edf.get_data() * 1e6
    from_file = _causal(sos, rec)
    # the recording differs by at most half an EDF step per sample; the filter's
    # gain is bounded, so the filtered signals stay within a few steps
    assert np.abs(online - from_file[:, :n]).max() < 20 * STEP


def test_online_band_power_equals_offline(synthetic_recording):
    online = np.concatenate([f for f, _ in synthetic_recording["updates"]], axis=1)
    n_seen = 0
    checked = 0
    for filtered, features in synthetic_recording["updates"]:
        n_seen += filtered.shape[1]
        if features is None:
            assert n_seen < 250
            continue
        window = online[:, n_seen - 250:n_seen]
        np.testing.assert_allclose(features, band_power(window, SFREQ), rtol=1e-10)
        checked += 1
    assert checked >= 30
    assert features.shape == (16, len(FREQ_BANDS))


def test_sidecar_and_telemetry(synthetic_recording):
    meta = json.loads(sidecar_path(synthetic_recording["path"]).read_text())
    assert meta["device"] == "synthetic" and meta["n_times"] == N
    assert meta["format"] == "EDF+" and meta["recovered"] is False
    assert meta["padded_samples"] == 0 and "numpy" in meta["versions"]
    tel = meta["telemetry"]
    assert tel["dropped_samples"] == 0 and tel["stalls"] == 0
    assert abs(tel["achieved_sfreq"] - SFREQ) < 5
    assert tel["quality_windows"] == 10
    ts0 = synthetic_recording["timestamps"][0]
    assert meta["start_timestamp"] == pytest.approx(ts0)
    assert [m["description"] for m in meta["markers"]] == ["stim-tcp", "stim-udp", "end-tcp"]
    assert [m["origin"] for m in meta["markers"]] == ["tcp", "udp", "tcp"]
    assert len(meta["events"]) == tel["events"]
    summary = synthetic_recording["summary"]
    assert summary["n_markers"] == 3 and summary["telemetry"]["n_samples"] == N


class _StallingSource(Source):
    """250 Hz of sine/cosine that goes silent after ``stall_at`` samples; reconnect()
    brings it back when ``recovers``."""

    def __init__(self, stall_at, recovers):
        super().__init__()
        self.ch_names, self.sfreq = ["A", "B"], 250.0
        self.physical_min, self.physical_max = -1000.0, 1000.0
        self.stall_at, self.recovers = stall_at, recovers
        self.attempts = 0
        self.sent = 0

    def _start(self):
        self.t0 = time.time() - self.sent / 250.0

    def _read(self, max_samples):
        due = min(int((time.time() - self.t0) * 250.0), self.stall_at)
        i = np.arange(self.sent, max(self.sent, due))
        self.sent += i.size
        return (np.vstack([np.sin(i / 10.0), np.cos(i / 10.0)]) * 100, self.t0 + i / 250.0,
                i % 256)

    def _stop(self):
        pass

    def reconnect(self):
        self.attempts += 1
        if self.recovers:
            self.stall_at = 10 ** 9
            self.t0 = time.time() - self.sent / 250.0
        return self.recovers


def test_stall_then_failed_reconnects_stop_cleanly_and_keep_the_data(tmp_path):
    from physioemo.acquisition.recorder import Recorder
    from physioemo.acquisition.session import Acquisition
    from physioemo.exceptions import DeviceError

    src = _StallingSource(300, recovers=False)
    out = tmp_path / "stall.edf"
    rec = Recorder(out, ["A", "B"], 250.0, physical_min=-1000.0, physical_max=1000.0)
    acq = Acquisition(src, rec, stall_s=0.3, max_reconnects=2, notch=None)
    with pytest.raises(DeviceError, match="no data for .* 2 reconnection attempts failed"):
        acq.run(20.0)
    assert src.attempts == 2
    raw = mne.io.read_raw_edf(out, preload=True, verbose="error")
    i = np.arange(300)
    np.testing.assert_allclose(raw.get_data()[:, :300] * 1e6,
                               np.vstack([np.sin(i / 10.0), np.cos(i / 10.0)]) * 100,
                               atol=2000 / 65535 / 2 + 1e-9)
    desc = list(raw.annotations.description)
    assert desc[:3] == ["STALL 0.3 s", "RECONNECT failed", "RECONNECT failed"]
    meta = json.loads(sidecar_path(out).read_text())
    assert meta["telemetry"]["stalls"] == 1 and meta["telemetry"]["reconnects"] == 2


def test_stall_then_reconnect_continues(tmp_path):
    from physioemo.acquisition.session import Acquisition

    src = _StallingSource(200, recovers=True)
    acq = Acquisition(src, None, stall_s=0.3, max_reconnects=2, notch=None)
    summary = acq.run(2.0)
    assert summary["n_times"] == 500 and src.attempts == 1
    tel = summary["telemetry"]
    assert tel["stalls"] == 1 and tel["reconnects"] == 1 and tel["dropped_samples"] == 0


def test_a_marker_flood_is_kept_whole_in_the_sidecar(tmp_path, caplog):
    """3,000 TCP + 300 UDP markers in 2 s of data, one of 1 MB, some not UTF-8: every one
    is in the sidecar byte for byte; the EDF+ holds its 128 and the log says so."""
    import base64
    import socket
    import threading

    from physioemo.acquisition.markers import MarkerHub, TCPMarkers, UDPMarkers
    from physioemo.acquisition.recorder import Recorder, write_edf
    from physioemo.acquisition.replay import EDFSource
    from physioemo.acquisition.session import Acquisition

    src = tmp_path / "src.edf"
    write_edf(src, np.zeros((2, 500)), SFREQ, ["A", "B"], physical_min=-1.0,
              physical_max=1.0)
    out = tmp_path / "flood.edf"
    hub = MarkerHub()
    tcp, udp = TCPMarkers(hub, 0), UDPMarkers(hub, 0)
    tcp_sent = [b"m%d" % i for i in range(3000)]
    tcp_sent[10] = b"x" * (1 << 20)
    tcp_sent[11] = b"\xff\xfe not utf-8"
    tcp_sent[12] = b"nul \x00 inside"
    udp_sent = [b"u%d \xe9" % i for i in range(300)]
    source = EDFSource(src, speed=1.0)

    def sender():
        while getattr(acq, "n_done", 0) < 50:  # recording (and listening) for 0.2 s
            time.sleep(0.01)
        with socket.create_connection(("127.0.0.1", tcp.port)) as sock:
            sock.sendall(b"\n".join(tcp_sent) + b"\n")
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            for b in udp_sent:
                sock.sendto(b, ("127.0.0.1", udp.port))
                time.sleep(0.0005)

    rec = Recorder(out, ["A", "B"], SFREQ, physical_min=-1.0, physical_max=1.0)
    acq = Acquisition(source, rec, listeners=[tcp, udp], hub=hub)
    thread = threading.Thread(target=sender, daemon=True)
    thread.start()
    acq.run()
    thread.join(timeout=10)
    meta = json.loads(sidecar_path(out).read_text())

    def exact(m):
        return base64.b64decode(m["bytes_base64"]) if "bytes_base64" in m else \
            m["description"].encode()

    assert [exact(m) for m in meta["markers"] if m["origin"] == "tcp"] == tcp_sent
    assert [exact(m) for m in meta["markers"] if m["origin"] == "udp"] == udp_sent
    assert meta["n_markers"] == 3300 and len(acq.summary["markers"]) == 3300
    edf = meta["edf_annotations"]
    n_all = meta["n_annotations"]  # the markers and the quality events (flat channels)
    assert n_all == 3300 + len(meta["annotations"])
    assert edf["capacity"] == 128 and edf["not_stored"] == n_all - 127
    ann = mne.io.read_raw_edf(out, verbose="error").annotations
    assert len(ann) == 128
    assert ann.description[-1] == f"physioemo: {n_all - 127} more in sidecar JSON"
    stored = [m for m in meta["markers"] if m["edf"] != "not stored"]
    assert stored == meta["markers"][:len(stored)]  # the first in time
    odd = [m for m in stored if m["origin"] == "tcp"][10:13]
    assert [m["edf"] for m in odd] == ["shortened", "escaped", "escaped"]
    assert odd[0]["edf_text"] == "x" * 37 + "…"
    in_edf = ["x" * 37 + "…", "\\xff\\xfe not utf-8", "nul \\x00 inside"]
    assert [d for d in ann.description if d in in_edf] == in_edf
    assert (f"{n_all} annotations in 2 s of data exceed EDF+'s 64 per 1-s data record (128 "
            f"in all); the first 127 in time are in the file, {n_all - 127} are not (all are "
            "complete in flood.json)") in caplog.text
