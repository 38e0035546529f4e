"""Telemetry: drops from the package counter and timestamp gaps, channel quality."""

import numpy as np
import pytest

from physioemo.acquisition.telemetry import Telemetry

SFREQ = 250.0


def _stream(n, rng):
    t = np.arange(n) / SFREQ
    data = rng.normal(0, 10, (3, n))
    return data, 1_700_000_000.0 + t, np.arange(n) % 256


def test_counter_gaps_are_dropped_samples():
    rng = np.random.default_rng(0)
    data, ts, pkg = _stream(1000, rng)
    keep = np.ones(1000, bool)
    keep[100:103] = False  # 3 lost
    keep[600:612] = False  # 12 lost
    tel = Telemetry(SFREQ, ["a", "b", "c"])
    events = []
    idx = np.flatnonzero(keep)
    for i in range(0, idx.size, 37):  # arbitrary chunking
        sel = idx[i:i + 37]
        events += tel.update(data[:, sel], ts[sel], pkg[sel])
    drops = [e for e in events if e.kind == "drop"]
    assert [e.description for e in drops] == ["DROP 3 samples", "DROP 12 samples"]
    assert tel.dropped == 15
    # onsets are positions in the recorded stream (samples actually received)
    np.testing.assert_allclose([e.onset_s for e in drops], [100 / SFREQ, 597 / SFREQ])
    assert tel.achieved_sfreq == pytest.approx((idx.size - 1) / (ts[idx[-1]] - ts[0]))


def test_gap_the_counter_cannot_see_is_reported_not_guessed():
    rng = np.random.default_rng(1)
    data, ts, pkg = _stream(2000, rng)
    keep = np.ones(2000, bool)
    keep[500:1012] = False  # 512 samples = exactly two counter periods
    tel = Telemetry(SFREQ, ["a", "b", "c"])
    events = tel.update(data[:, keep], ts[keep], pkg[keep])
    assert tel.dropped == 0 and tel.n_gaps == 1
    assert [e.description for e in events if e.kind == "gap"] == ["GAP 2.05 s"]


def test_without_a_counter_timestamps_estimate_the_loss():
    rng = np.random.default_rng(1)
    data, ts, _ = _stream(2000, rng)
    keep = np.ones(2000, bool)
    keep[500:1012] = False
    tel = Telemetry(SFREQ, ["a", "b", "c"])
    events = tel.update(data[:, keep], ts[keep], None)
    assert tel.dropped == 512
    assert [(e.description, e.onset_s) for e in events if e.kind == "drop"] == [
        ("DROP 512 samples", 500 / SFREQ)]


def test_timestamp_gap_without_lost_samples_is_a_gap():
    rng = np.random.default_rng(2)
    data, ts, pkg = _stream(500, rng)
    ts = ts.copy()
    ts[250:] += 0.4  # the host got the samples late, none missing
    tel = Telemetry(SFREQ, ["a", "b", "c"])
    events = tel.update(data, ts, pkg)
    assert tel.dropped == 0 and tel.n_gaps == 1
    assert [e.kind for e in events if e.kind in ("gap", "drop")] == ["gap"]


def test_railed_flat_and_line_noise():
    rng = np.random.default_rng(3)
    n = 750
    t = np.arange(n) / SFREQ
    data = rng.normal(0, 5, (4, n))
    data[1] = 187_000.0  # stuck at the rail
    data[2] = 3.0  # flat
    data[3] += 30.0 * np.sin(2 * np.pi * 50.0 * t)  # 30 uV of mains
    tel = Telemetry(SFREQ, ["ok", "rail", "flat", "mains"], physical_min=-187_500.0,
                    physical_max=187_500.0, line_freq=50.0)
    events = tel.update(data, 1_700_000_000.0 + t, None)
    assert tel.channel_state == ["ok", "railed", "flat", "noisy"]
    assert {(e.kind, e.channel) for e in events} == {
        ("railed", "rail"), ("flat", "flat"), ("line_noise", "mains")}
    # RMS of a 30-uV-amplitude sinusoid is 30 / sqrt(2); the noise adds a little
    assert tel.line_noise[3] == pytest.approx(30 / np.sqrt(2), rel=0.05)
    assert tel.line_noise[0] < 2.0
    summary = tel.summary()
    assert summary["railed_s"] == {"rail": 3.0} and summary["flat_s"] == {"flat": 3.0}
    # back to normal -> one "ok" event
    events = tel.update(rng.normal(0, 5, (4, 250)), 1_700_000_003.0 + t[:250], None)
    assert sorted(e.channel for e in events if e.kind == "ok") == ["flat", "mains", "rail"]
