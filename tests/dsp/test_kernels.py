"""Tests for the private Numba kernels, each against a scipy/NumPy oracle."""

import numpy as np
import pytest
from scipy import signal

from physioemo.dsp import _kernels, design_sos


@pytest.fixture
def sos():
    return design_sos(250.0, 1.0, 45.0, order=4, notch=50.0)


@pytest.mark.parametrize("n_rows", [1, 3, 4, 9])  # below, at and across the row block
def test_sos_causal_kernel(sos, n_rows):
    x = np.random.default_rng(n_rows).standard_normal((n_rows, 777))
    zi = signal.sosfilt_zi(sos)
    out = np.full_like(x, np.nan)
    _kernels.sos_causal(sos, zi, x, out, 0, n_rows)
    ref = signal.sosfilt(sos, x, zi=zi[:, None, :] * x[None, :, :1])[0]
    np.testing.assert_array_equal(out, ref)


@pytest.mark.parametrize("n_rows", [1, 5, 8])
def test_sos_zero_phase_kernel(sos, n_rows):
    x = np.random.default_rng(n_rows).standard_normal((n_rows, 500))
    zi = signal.sosfilt_zi(sos)
    out = np.full_like(x, np.nan)
    _kernels.sos_zero_phase(sos, zi, x, 33, out, 0, n_rows)  # 5 sections: padlen 3 * 11
    np.testing.assert_array_equal(out, signal.sosfiltfilt(sos, x))
    _kernels.sos_zero_phase(sos, zi, x, 7, out, 0, n_rows)  # any padding length
    np.testing.assert_array_equal(out, signal.sosfiltfilt(sos, x, padlen=7))
    part = np.full_like(x, np.nan)  # a row range leaves the other rows alone
    _kernels.sos_zero_phase(sos, zi, x, 33, part, n_rows // 2, n_rows)
    np.testing.assert_array_equal(part[n_rows // 2:], signal.sosfiltfilt(sos, x[n_rows // 2:]))
    assert np.isnan(part[:n_rows // 2]).all()


def test_sos_stream_kernel_carries_state(sos):
    x = np.random.default_rng(0).standard_normal((6, 300))
    zi = signal.sosfilt_zi(sos)
    z = np.zeros((sos.shape[0], 2, 6))
    scratch = np.empty(6)
    counters = np.zeros(2, dtype=np.int64)
    out = np.empty_like(x)
    for a, b in [(0, 1), (1, 17), (17, 17), (17, 300)]:
        chunk = np.ascontiguousarray(x[:, a:b])
        res = np.empty_like(chunk)
        assert _kernels.sos_stream(sos, zi, chunk, res, z, scratch, counters) == 0
        out[:, a:b] = res
    assert counters.tolist() == [1, 300]
    ref, zf = signal.sosfilt(sos, x, zi=zi[:, None, :] * x[None, :, :1])
    np.testing.assert_array_equal(out, ref)
    np.testing.assert_array_equal(z, np.moveaxis(zf, 1, 2))  # (n_sections, 2, n_channels)
    bad = x[:, :4].copy()
    bad[2, 1] = np.inf
    bad[0, 0] = np.nan
    assert _kernels.sos_stream(sos, zi, bad, bad.copy(), z, scratch, counters) == 2
    np.testing.assert_array_equal(z, np.moveaxis(zf, 1, 2))
    assert counters.tolist() == [1, 300]
    # shape mismatch (wrong channel count or output shape) is refused, not filtered
    assert _kernels.sos_stream(sos, zi, x[:5].copy(), np.empty((5, 300)), z, scratch,
                               counters) == -1
    assert _kernels.sos_stream(sos, zi, x.copy(), np.empty((6, 299)), z, scratch,
                               counters) == -1
    # the fixed signature refuses other dtypes/layouts instead of compiling them
    with pytest.raises(TypeError):
        _kernels.sos_stream(sos, zi, x[:, ::2], np.empty((6, 150)), z, scratch, counters)


def test_detrend_window_kernel():
    x = np.random.default_rng(0).standard_normal((2, 300)) + 3.0
    view = np.lib.stride_tricks.sliding_window_view(x, 64, axis=-1)[:, ::50]  # strided
    win = signal.get_window("hann", 64)
    out = np.empty((view.shape[0] * view.shape[1], 64))
    _kernels.detrend_window(view, win, 0, out)
    ref = (signal.detrend(view, type="constant", axis=-1) * win).reshape(out.shape)
    np.testing.assert_allclose(out, ref, rtol=0, atol=1e-14)
    part = np.empty((4, 64))  # rows 3..6 only
    _kernels.detrend_window(view, win, 3, part)
    np.testing.assert_allclose(part, ref[3:7], rtol=0, atol=1e-14)


def test_run_rows_covers_every_row_once():
    calls = []
    _kernels.run_rows(lambda tag, r0, r1: calls.append((tag, r0, r1)), 21, 8, "t")
    assert sorted(calls) == [("t", 0, 8), ("t", 8, 16), ("t", 16, 21)]


def test_band_sums_kernel():
    rng = np.random.default_rng(0)
    spec = rng.standard_normal((7, 65)) + 1j * rng.standard_normal((7, 65))
    weight = rng.random(65)
    lo = np.array([1, 4, 0, 64], dtype=np.int64)
    hi = np.array([4, 9, 65, 65], dtype=np.int64)
    out = np.empty((7, 4))
    _kernels.band_sums(spec, lo, hi, weight, out)
    ref = np.stack([(np.abs(spec[:, a:b]) ** 2 * weight[a:b]).sum(-1)
                    for a, b in zip(lo, hi, strict=True)], axis=-1)
    np.testing.assert_allclose(out, ref, rtol=1e-13)
