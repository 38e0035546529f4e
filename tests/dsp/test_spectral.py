"""Tests for physioemo.dsp.spectral against scipy.signal.periodogram as the oracle."""

import numpy as np
import pytest
from scipy import signal

from physioemo.dsp import (
    FREQ_BANDS,
    OnlineBandPower,
    band_power,
    differential_entropy,
    sliding_windows,
)
from physioemo.exceptions import DataError, ParameterError


def oracle_band_power(x, sfreq, bands=FREQ_BANDS, relative=False):
    f, pxx = signal.periodogram(x, sfreq, window="hann", detrend="constant", axis=-1)
    df = f[1] - f[0]
    out = np.stack([pxx[..., (f >= lo) & (f < hi)].sum(-1) * df for lo, hi in bands.values()],
                   axis=-1)
    if relative:
        lo = min(b[0] for b in bands.values())
        hi = max(b[1] for b in bands.values())
        out = out / (pxx[..., (f >= lo) & (f < hi)].sum(-1, keepdims=True) * df)
    return out


@pytest.fixture
def windows():
    rng = np.random.default_rng(0)
    return rng.standard_normal((3, 14, 6, 128)) * 1e-5 + 2e-5


@pytest.mark.parametrize("sfreq, n_times", [(128.0, 128), (250.0, 250), (128.0, 127),
                                            (256.0, 512)])
def test_band_power_matches_periodogram(sfreq, n_times):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 5, n_times)) * 3e-6 - 1e-6
    got = band_power(x, sfreq)
    assert got.shape == (4, 5, 5)
    np.testing.assert_allclose(got, oracle_band_power(x, sfreq), rtol=1e-10, atol=0)


def test_band_power_other_float_dtypes(windows):
    for dtype in (np.float32, np.float16):
        x = windows[0].astype(dtype)
        np.testing.assert_allclose(band_power(x, 128.0),
                                   oracle_band_power(x.astype(np.float64), 128.0), rtol=1e-10)


def test_band_power_relative_and_custom_bands(windows):
    np.testing.assert_allclose(band_power(windows, 128.0, relative=True),
                               oracle_band_power(windows, 128.0, relative=True), rtol=1e-10)
    bands = {"low": (0.0, 3.0), "line": (49.0, 51.0), "top": (60.0, 64.0)}
    np.testing.assert_allclose(band_power(windows, 128.0, bands),
                               oracle_band_power(windows, 128.0, bands), rtol=1e-10)
    np.testing.assert_allclose(band_power(windows, 128.0, bands, relative=True),
                               oracle_band_power(windows, 128.0, bands, relative=True),
                               rtol=1e-10)


def test_band_power_of_a_sine_is_half_its_squared_amplitude():
    # hand-computed: a bin-centred 10 Hz sine of amplitude 2 has power 2**2 / 2 = 2, all of
    # it in alpha (the Hann window spreads it over 9, 10 and 11 Hz only)
    t = np.arange(128) / 128.0
    x = 2.0 * np.sin(2 * np.pi * 10 * t) + 7.0  # the offset is removed by detrending
    got = band_power(x[None], 128.0)[0]
    np.testing.assert_allclose(got, [0, 0, 2.0, 0, 0], rtol=0, atol=1e-12)


def test_band_power_multichannel_equals_per_channel(windows):
    whole = band_power(windows, 128.0)
    for idx in np.ndindex(windows.shape[:-2]):
        for c in range(windows.shape[-2]):
            np.testing.assert_allclose(whole[idx][c],
                                       band_power(windows[idx][c:c + 1], 128.0)[0],
                                       rtol=1e-14)


def test_band_power_on_sliding_window_view_equals_copy():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 14, 25_000))
    view = sliding_windows(x, 128, 128)
    np.testing.assert_array_equal(band_power(view, 128.0), band_power(view.copy(), 128.0))
    np.testing.assert_allclose(band_power(view[0, :2], 128.0),
                               oracle_band_power(view[0, :2], 128.0), rtol=1e-10)


def test_differential_entropy_formula(windows):
    got = differential_entropy(windows, 128.0)
    p = oracle_band_power(windows, 128.0)
    np.testing.assert_allclose(got, 0.5 * np.log(2 * np.pi * np.e * p), rtol=1e-12)
    # hand-computed: P = 2 -> 0.5 * ln(4 * pi * e)
    t = np.arange(128) / 128.0
    de = differential_entropy(2.0 * np.sin(2 * np.pi * 10 * t)[None], 128.0,
                              bands={"alpha": (8.0, 14.0)})
    np.testing.assert_allclose(de, [[0.5 * np.log(4 * np.pi * np.e)]], rtol=1e-12)


@pytest.mark.parametrize("window, step", [(128, 128), (128, 32), (100, 150), (1000, 1)])
def test_sliding_windows_is_a_view_with_the_right_windows(window, step):
    x = np.random.default_rng(0).standard_normal((3, 1000))
    w = sliding_windows(x, window, step)
    n_windows = (1000 - window) // step + 1
    assert w.shape == (3, n_windows, window)
    assert np.shares_memory(w, x)
    for k in range(n_windows):
        np.testing.assert_array_equal(w[:, k], x[:, k * step:k * step + window])


def test_sliding_windows_errors():
    x = np.zeros((2, 100))
    with pytest.raises(DataError, match=r"window_samples=101 is longer.*100 samples"):
        sliding_windows(x, 101, 1)
    with pytest.raises(ParameterError, match=r"step_samples=0 is out of range"):
        sliding_windows(x, 10, 0)
    with pytest.raises(ParameterError, match=r"window_samples must be an integer"):
        sliding_windows(x, 1.5, 1)


@pytest.mark.parametrize("kind, relative", [("power", False), ("power", True), ("de", False)])
def test_online_band_power_equals_offline(kind, relative):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((14, 3000))
    online = OnlineBandPower(128.0, 14, 128, kind=kind, relative=relative)
    pos, n_results = 0, 0
    while pos < x.shape[1]:
        n = int(rng.integers(1, 300))
        res = online.update(x[:, pos:pos + n])
        pos = min(pos + n, x.shape[1])
        if pos < 128:
            assert res is None
            continue
        last = x[:, pos - 128:pos]
        np.testing.assert_array_equal(online.window(), last)
        if kind == "de":
            ref = differential_entropy(last, 128.0)
            oracle = 0.5 * np.log(2 * np.pi * np.e * oracle_band_power(last, 128.0))
        else:
            ref = band_power(last, 128.0, relative=relative)
            oracle = oracle_band_power(last, 128.0, relative=relative)
        np.testing.assert_allclose(res, ref, rtol=1e-13)
        np.testing.assert_allclose(res, oracle, rtol=1e-10)
        np.testing.assert_array_equal(online.compute(), res)
        n_results += 1
    assert n_results > 5
    assert online.band_names == tuple(FREQ_BANDS)


def test_online_band_power_errors():
    online = OnlineBandPower(128.0, 2, 128)
    assert online.update(np.zeros((2, 10))) is None
    with pytest.raises(DataError, match=r"needs 128 samples per channel.*got 10.*update\(\)"):
        online.compute()
    with pytest.raises(DataError, match=r"3 channel\(s\).*n_channels=2"):
        online.update(np.zeros((3, 10)))
    with pytest.raises(ParameterError, match=r"relative=True only applies to kind='power'"):
        OnlineBandPower(128.0, 2, 128, kind="de", relative=True).reset()
    with pytest.raises(ParameterError, match=r"kind='psd' is not a valid option"):
        OnlineBandPower(128.0, 2, 128, kind="psd").reset()


def test_band_power_errors():
    x = np.random.default_rng(0).standard_normal((2, 128))
    with pytest.raises(ParameterError, match=r"band 'gamma'=\(31.0, 45.0\) must satisfy .*"
                                             r"Nyquist \(32.0 Hz for sfreq=64.0\)"):
        band_power(x, 64.0)
    with pytest.raises(ParameterError, match=r"band 'delta' \(1.0-4.0 Hz\) contains no frequency "
                                             r"bin.*8 samples.*bin width 16 Hz.*longer windows"):
        band_power(x[:, :8], 128.0)
    with pytest.raises(ParameterError, match=r"band 'x' must be a \(low, high\) pair"):
        band_power(x, 128.0, bands={"x": (1.0,)})
    with pytest.raises(ParameterError, match=r"bands must be a non-empty mapping"):
        band_power(x, 128.0, bands=[(1, 4)])
    with pytest.raises(ParameterError, match=r"at least 2 dimension\(s\), got shape \(128,\)"):
        band_power(x[0], 128.0)
    with pytest.raises(ParameterError, match=r"floating-point array, got dtype int64"):
        band_power(np.ones((2, 128), dtype=np.int64), 128.0)
    bad = x.copy()
    bad[1, 5] = np.nan
    with pytest.raises(DataError, match=r"1 NaN or infinite value"):
        differential_entropy(bad, 128.0)
    with pytest.raises(DataError, match=r"1 sample\(s\) on its last axis.*at least 2"):
        band_power(x[:, :1], 128.0)
