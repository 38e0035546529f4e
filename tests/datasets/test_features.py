import numpy as np
import pytest
from scipy.signal import butter, lfilter, periodogram

from physioemo.datasets import load_dreamer
from physioemo.datasets.features import (
    HEART_FEATURES,
    detect_r_peaks,
    dreamer_features,
    eeg_band_features,
    heart_rate_features,
)
from physioemo.datasets.synthetic import _ecg, _SubjectModel
from physioemo.dsp import FREQ_BANDS
from physioemo.exceptions import ParameterError


def _pink(rng, shape):
    spec = np.fft.rfft(rng.standard_normal(shape), axis=-1)
    f = np.fft.rfftfreq(shape[-1], 1 / 128)
    spec /= np.sqrt(np.maximum(f, 0.5))
    return np.fft.irfft(spec, shape[-1], axis=-1)


def test_de_matches_periodogram_oracle():
    rng = np.random.default_rng(0)
    x = 4000 + 10 * _pink(rng, (20, 14, 128))
    de = eeg_band_features(x)
    f, p = periodogram(x, 128, window="hann", detrend="constant", axis=-1)
    for b, (lo, hi) in enumerate(FREQ_BANDS.values()):
        power = p[..., (f >= lo) & (f < hi)].sum(-1) * (f[1] - f[0])
        np.testing.assert_allclose(de[..., b], 0.5 * np.log(2 * np.pi * np.e * power),
                                   rtol=1e-10)
        np.testing.assert_allclose(eeg_band_features(x, kind="power")[..., b], power, rtol=1e-10)


def test_de_does_not_measure_the_dc_offset():
    """Windows of raw Emotiv-like data with a drifting offset of thousands of units."""
    rng = np.random.default_rng(0)
    n = 3000
    offsets = rng.uniform(3000.0, 5000.0, n)
    x = offsets[:, None, None] + 10 * _pink(rng, (n, 1, 128))
    means = x.mean(axis=(1, 2))
    de = eeg_band_features(x)[:, 0, :]
    for b in range(de.shape[1]):
        assert abs(np.corrcoef(de[:, b], means)[0, 1]) < 0.1
    # the oracle can fail: a Butterworth band filter started from a zero state on each raw
    # window (as TorchEEG does) measures mostly the offset
    sos_b, sos_a = butter(5, [8 / 64, 14 / 64], btype="band")
    y = lfilter(sos_b, sos_a, x[:, 0, :], axis=-1)
    naive = 0.5 * np.log(2 * np.pi * np.e * y.var(axis=-1))
    assert np.corrcoef(naive, means)[0, 1] > 0.9


def _synthetic_ecg(rng, rr, sfreq=256, dc=2000.0, gain=-400.0):
    beats = np.round(np.cumsum(np.r_[0.5, rr]) * sfreq).astype(int)
    n = beats[-1] + sfreq
    t = np.arange(n) / sfreq
    x = np.zeros(n)
    for b in beats:  # QRS-like biphasic bump
        x += np.exp(-0.5 * ((t - b / sfreq) / 0.012) ** 2)
        x -= 0.3 * np.exp(-0.5 * ((t - b / sfreq - 0.03) / 0.01) ** 2)
        x += 0.25 * np.exp(-0.5 * ((t - b / sfreq - 0.25) / 0.04) ** 2)
    return dc + gain * x + rng.normal(0, 3, n) + 20 * np.sin(2 * np.pi * 0.2 * t), beats


def test_r_peaks_found_with_either_polarity():
    rng = np.random.default_rng(0)
    rr = 0.8 + 0.05 * np.sin(np.arange(80) / 3) + rng.normal(0, 0.01, 80)
    for gain in (-400.0, 300.0):
        ecg, beats = _synthetic_ecg(rng, rr, gain=gain)
        peaks = detect_r_peaks(ecg, 256)
        assert peaks.size == beats.size
        assert np.abs(peaks - beats).max() <= 2


def test_heart_rate_features_match_direct_computation():
    rng = np.random.default_rng(1)
    rr = rng.uniform(0.6, 1.1, 200)
    peaks = np.round(np.cumsum(np.r_[1.0, rr]) * 256).astype(int)
    starts = np.arange(0, peaks[-1] - 256, 256)
    feats = heart_rate_features(peaks, 256, starts, 256, context_s=8.0)
    assert feats.shape == (starts.size, len(HEART_FEATURES))
    t = peaks / 256
    for i, s0 in enumerate(starts):
        c = (s0 + 128) / 256
        inside = t[(t >= c - 4) & (t <= c + 4)]
        rri = np.diff(inside)
        if rri.size < 2:
            assert np.isnan(feats[i]).all()
            continue
        expected = (60 / rri.mean(), 1000 * rri.std(), 1000 * np.sqrt(np.mean(np.diff(rri) ** 2)))
        np.testing.assert_allclose(feats[i], expected, rtol=1e-9)
    # too few beats: NaN, never an invented value
    assert np.isnan(heart_rate_features(peaks[:2], 256, starts[:3], 256)).all()


def test_dreamer_features_windows_meta_and_planted_heart_rate(tiny_dreamer_path):
    d = load_dreamer(tiny_dreamer_path, lazy=True)
    eeg, heart, meta = dreamer_features(d)
    n = 2 * 18 * 62
    assert eeg.shape == (n, 14, len(FREQ_BANDS)) and heart.shape == (n, 3)
    k = np.flatnonzero((meta["subject"] == 1) & (meta["clip"] == 4) & (meta["start"] == 640))[0]
    window = d.subjects[1].eeg_stimulus[4][:, 640:768]
    np.testing.assert_allclose(eeg[k], eeg_band_features(window), rtol=1e-12)
    assert meta["valence"][k] == d.subjects[1].ratings[4, 0] - 1
    # the generator's ECG beats at the rate it was asked for
    model = _SubjectModel(np.random.default_rng(0))
    ecg, true_peaks = _ecg(model, np.random.default_rng(1), 256 * 60, 75.0)
    found = detect_r_peaks(ecg[0], 256)
    assert found.size == true_peaks.size and np.abs(found - true_peaks).max() <= 3
    # heart rate follows arousal in the generated file (planted effect)
    hr = np.array([[np.nanmean(heart[(meta["subject"] == s) & (meta["clip"] == j), 0])
                    for j in range(18)] for s in range(2)])
    for s in range(2):
        assert np.corrcoef(hr[s], d.subjects[s].ratings[:, 1])[0, 1] > 0.8
        assert 50 < hr[s].mean() < 100
    eeg_only, none, _ = dreamer_features(d, subjects=[0], ecg=False, window_s=2.0, step_s=1.0)
    assert none is None and eeg_only.shape == (18 * 61, 14, len(FREQ_BANDS))
    with pytest.raises(ParameterError, match="kind='psd' is not a valid option"):
        eeg_band_features(window, kind="psd")
