"""The acquisition loop end to end on BrainFlow's synthetic board (10 s -> EDF+ -> MNE)."""

import json

import mne
import numpy as np
import pytest
from scipy.signal import sosfilt, sosfilt_zi

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
        # the sample the board stamped closest to the send time
        expected = np.argmin(np.abs(ts - sent_at)) / SFREQ
        assert abs(onsets[0] - expected) < 0.05
        assert abs(onsets[0] - (sent_at - ts[0])) < 0.1


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
    summary = synthetic_recording["summary"]
    assert summary["n_markers"] == 3 and summary["telemetry"]["n_samples"] == N
