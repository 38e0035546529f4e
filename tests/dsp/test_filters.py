"""Tests for physioemo.dsp.filters against scipy.signal as the oracle."""

import numpy as np
import pytest
from scipy import signal

from physioemo.dsp import StreamingFilter, design_sos, filter_data, notch_filter
from physioemo.exceptions import DataError, ParameterError

SFREQ = 128.0


@pytest.fixture
def eeg():
    rng = np.random.default_rng(0)
    # a slow drift plus noise: exercises the steady-state initial conditions
    x = rng.standard_normal((2, 7, 3000)).cumsum(-1) * 1e-6 + 5e-5
    return x


def _zi(sos, x):
    """scipy's steady-state initial conditions scaled by each row's first sample."""
    zi = signal.sosfilt_zi(sos)
    return zi.reshape((zi.shape[0],) + (1,) * (x.ndim - 1) + (2,)) * x[..., :1]


@pytest.mark.parametrize("l_freq, h_freq, order", [
    (4.0, 45.0, 4),   # the DREAMER band-pass
    (1.0, None, 4),   # high-pass
    (None, 30.0, 5),  # low-pass, odd order: a first-order section (shorter padding)
    (0.5, 60.0, 3),
])
def test_design_sos_is_scipy_butter(l_freq, h_freq, order):
    if l_freq and h_freq:
        ref = signal.butter(order, [l_freq, h_freq], "bandpass", fs=SFREQ, output="sos")
    elif h_freq:
        ref = signal.butter(order, h_freq, "lowpass", fs=SFREQ, output="sos")
    else:
        ref = signal.butter(order, l_freq, "highpass", fs=SFREQ, output="sos")
    np.testing.assert_array_equal(design_sos(SFREQ, l_freq, h_freq, order=order), ref)


@pytest.mark.parametrize("l_freq, h_freq, order", [
    (4.0, 45.0, 4), (1.0, None, 4), (None, 30.0, 5), (0.5, 60.0, 3)])
def test_zero_phase_bit_identical_to_sosfiltfilt(eeg, l_freq, h_freq, order):
    sos = design_sos(SFREQ, l_freq, h_freq, order=order)
    got = filter_data(eeg, SFREQ, l_freq, h_freq, order=order)
    ref = signal.sosfiltfilt(sos, eeg)
    assert got.shape == eeg.shape and got.dtype == np.float64
    np.testing.assert_array_equal(got, ref)


@pytest.mark.parametrize("l_freq, h_freq, order", [(4.0, 45.0, 4), (None, 30.0, 5)])
def test_causal_bit_identical_to_sosfilt_with_steady_state(eeg, l_freq, h_freq, order):
    sos = design_sos(SFREQ, l_freq, h_freq, order=order)
    got = filter_data(eeg, SFREQ, l_freq, h_freq, order=order, phase="causal")
    ref, _ = signal.sosfilt(sos, eeg, zi=_zi(sos, eeg))
    np.testing.assert_array_equal(got, ref)


def test_multichannel_equals_per_channel_calls(eeg):
    for phase in ("zero", "causal"):
        whole = filter_data(eeg, SFREQ, 4.0, 45.0, phase=phase)
        for i in range(eeg.shape[0]):
            for c in range(eeg.shape[1]):
                one = filter_data(eeg[i, c], SFREQ, 4.0, 45.0, phase=phase)
                np.testing.assert_array_equal(whole[i, c], one)


def test_float32_and_non_contiguous_input(eeg):
    sos = design_sos(SFREQ, 4.0, 45.0)
    x32 = eeg[0].astype(np.float32)
    np.testing.assert_array_equal(filter_data(x32, SFREQ, 4.0, 45.0),
                                  signal.sosfiltfilt(sos, x32.astype(np.float64)))
    view = eeg[:, ::2, 10:-10]  # strided, not contiguous
    np.testing.assert_array_equal(filter_data(view, SFREQ, 4.0, 45.0),
                                  signal.sosfiltfilt(sos, view))


def test_shortest_signal_accepted_matches_scipy():
    sos = design_sos(SFREQ, 4.0, 45.0)  # 4 sections -> padlen 3 * 9 = 27
    x = np.random.default_rng(0).standard_normal((3, 28))
    np.testing.assert_array_equal(filter_data(x, SFREQ, 4.0, 45.0), signal.sosfiltfilt(sos, x))


def test_band_pass_removes_out_of_band_sine():
    # independent of scipy: a 2 Hz and a 60 Hz sine are removed, a 10 Hz sine kept
    t = np.arange(int(20 * SFREQ)) / SFREQ
    keep = np.sin(2 * np.pi * 10 * t)
    x = keep + np.sin(2 * np.pi * 2 * t) + np.sin(2 * np.pi * 60 * t)
    y = filter_data(x, SFREQ, 4.0, 45.0)
    mid = slice(256, -256)
    assert np.max(np.abs(y[mid] - keep[mid])) < 0.02


def test_notch_matches_scipy_iirnotch(eeg):
    sfreq = 250.0
    b, a = signal.iirnotch(50.0, 30.0, fs=sfreq)
    sos = signal.tf2sos(b, a)
    got = notch_filter(eeg, sfreq)
    np.testing.assert_array_equal(got, signal.sosfiltfilt(sos, eeg))
    # and the transfer-function form scipy users call agrees to rounding
    np.testing.assert_allclose(got, signal.filtfilt(b, a, eeg), rtol=0, atol=1e-18)
    causal = notch_filter(eeg, sfreq, phase="causal")
    np.testing.assert_array_equal(causal, signal.sosfilt(sos, eeg, zi=_zi(sos, eeg))[0])


def test_notch_several_frequencies_removes_line_noise():
    sfreq = 250.0
    t = np.arange(int(10 * sfreq)) / sfreq
    keep = np.sin(2 * np.pi * 10 * t)
    x = keep + np.sin(2 * np.pi * 50 * t) + 0.5 * np.sin(2 * np.pi * 100 * t)
    sos = np.concatenate([signal.tf2sos(*signal.iirnotch(f, 35.0, fs=sfreq))
                          for f in (50.0, 100.0)])
    got = notch_filter(x, sfreq, freqs=(50.0, 100.0), quality=35.0)
    np.testing.assert_array_equal(got, signal.sosfiltfilt(sos, x))
    mid = slice(500, -500)
    assert np.max(np.abs(got[mid] - keep[mid])) < 0.01


def _feed(filt, x, rng, low=1, high=2000):
    outs, pos = [], 0
    while pos < x.shape[1]:
        n = int(rng.integers(low, high + 1))
        outs.append(filt.process(x[:, pos:pos + n]))
        pos += n
    return np.concatenate(outs, axis=1)


def test_streaming_equals_causal_offline_for_random_chunks():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((16, 20_000)) * 1e-5 + 1e-4
    offline = filter_data(x, 250.0, 1.0, 45.0, phase="causal")
    filt = StreamingFilter(250.0, 16, l_freq=1.0, h_freq=45.0)
    np.testing.assert_array_equal(_feed(filt, x, rng), offline)
    # single samples too
    filt.reset()
    np.testing.assert_array_equal(_feed(filt, x[:, :500], rng, 1, 1), offline[:, :500])
    assert filt.n_samples_seen_ == 500


def test_streaming_with_notch_equals_scipy_cascade():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 6000))
    filt = StreamingFilter(250.0, 4, l_freq=1.0, h_freq=45.0, notch=50.0)
    got = _feed(filt, x, rng, 1, 700)
    sos = np.concatenate([signal.butter(4, [1.0, 45.0], "bandpass", fs=250.0, output="sos"),
                          signal.tf2sos(*signal.iirnotch(50.0, 30.0, fs=250.0))])
    np.testing.assert_array_equal(filt.sos_, sos)
    np.testing.assert_array_equal(got, signal.sosfilt(sos, x, zi=_zi(sos, x))[0])
    # equals band-pass then notch offline up to rounding (the notch's start state differs
    # only by rounding of the band-pass DC gain)
    seq = notch_filter(filter_data(x, 250.0, 1.0, 45.0, phase="causal"), 250.0, phase="causal")
    np.testing.assert_allclose(got, seq, rtol=0, atol=1e-12)


def test_streaming_out_in_place_and_reset():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((3, 400))
    offline = filter_data(x, 128.0, 4.0, 45.0, phase="causal")
    filt = StreamingFilter(128.0, 3, l_freq=4.0, h_freq=45.0)
    buf = np.empty((3, 100))
    for k in range(4):
        chunk = np.ascontiguousarray(x[:, 100 * k:100 * (k + 1)])
        assert filt.process(chunk, out=buf) is buf
        np.testing.assert_array_equal(buf, offline[:, 100 * k:100 * (k + 1)])
    filt.reset()
    chunk = x[:, :50].copy()
    assert filt.process(chunk, out=chunk) is chunk  # in place
    np.testing.assert_array_equal(chunk, offline[:, :50])
    assert filt.process(np.empty((3, 0))).shape == (3, 0)
    # float32, non-contiguous chunks and lists go through the validating path
    filt.reset()
    y32 = filt.process(x[:, :200].astype(np.float32))
    np.testing.assert_array_equal(y32, filter_data(x[:, :200].astype(np.float32), 128.0, 4.0,
                                                   45.0, phase="causal"))
    y_view = filt.process(np.asfortranarray(x[:, 200:300]))
    y_list = filt.process(x[:, 300:].tolist())
    assert filt.n_samples_seen_ == 400
    np.testing.assert_array_equal(np.concatenate([y_view, y_list], 1),
                                  filter_data(np.concatenate([x[:, :200].astype(np.float32)
                                                              .astype(np.float64), x[:, 200:]],
                                                             1), 128.0, 4.0, 45.0,
                                              phase="causal")[:, 200:])
    filt.reset()
    frozen = x[:, :50].copy()
    frozen.flags.writeable = False  # e.g. a view handed out by an acquisition buffer
    np.testing.assert_array_equal(filt.process(frozen), offline[:, :50])


def test_streaming_nan_chunk_rejected_without_touching_state():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 300))
    offline = filter_data(x, 128.0, 4.0, 45.0, phase="causal")
    filt = StreamingFilter(128.0, 2, l_freq=4.0, h_freq=45.0)
    first = filt.process(x[:, :100])
    bad = x[:, 100:150].copy()
    bad[1, 3] = np.nan
    with pytest.raises(DataError, match=r"1 NaN or infinite value.*state was left unchanged"):
        filt.process(bad)
    rest = filt.process(x[:, 100:])
    np.testing.assert_array_equal(np.concatenate([first, rest], 1), offline)


def test_streaming_errors():
    filt = StreamingFilter(128.0, 3, l_freq=4.0, h_freq=45.0)
    with pytest.raises(DataError, match=r"2 channel\(s\).*n_channels=3.*\(n_channels, n_chunk\)"):
        filt.process(np.zeros((2, 10)))
    with pytest.raises(ParameterError, match=r"must have 2 dimension\(s\), got shape \(10,\)"):
        filt.process(np.zeros(10))
    with pytest.raises(ParameterError, match=r"out must be a writeable C-contiguous float64"):
        filt.process(np.zeros((3, 10)), out=np.zeros((3, 9)))
    with pytest.raises(ParameterError, match=r"out must be a writeable C-contiguous float64"):
        filt.process(np.zeros((3, 10)), out=np.zeros((3, 10), dtype=np.float32))
    with pytest.raises(ParameterError, match=r"floating-point array, got dtype int64"):
        filt.process(np.zeros((3, 10), dtype=np.int64))
    assert filt.n_samples_seen_ == 0
    with pytest.raises(ParameterError, match=r"h_freq=64.0 must be below Nyquist"):
        StreamingFilter(128.0, 3, l_freq=4.0, h_freq=64.0).process(np.zeros((3, 4)))
    with pytest.raises(ParameterError, match=r"n_channels=0 is out of range"):
        StreamingFilter(128.0, 0, l_freq=4.0, h_freq=30.0).reset()


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(h_freq=64.0), ParameterError,
     r"h_freq=64.0 must be below Nyquist \(64.0 Hz for sfreq=128.0\); lower h_freq"),
    (dict(h_freq=80.0), ParameterError, r"h_freq=80.0 must be below Nyquist"),
    (dict(l_freq=45.0, h_freq=4.0), ParameterError,
     r"l_freq=45.0 must be below h_freq=4.0 .*swap them"),
    (dict(l_freq=None, h_freq=None), ParameterError, r"both None.*pass l_freq and/or h_freq"),
    (dict(phase="acausal"), ParameterError, r"phase='acausal' is not a valid option.*'zero'"),
    (dict(order=0), ParameterError, r"order=0 is out of range"),
    (dict(sfreq=-1.0), ParameterError, r"sfreq=-1.0 is out of range.*sampling frequency"),
])
def test_filter_parameter_errors(kwargs, error, match):
    args = dict(data=np.zeros((2, 500)), sfreq=128.0, l_freq=4.0, h_freq=45.0)
    args.update(kwargs)
    with pytest.raises(error, match=match):
        filter_data(**args)


def test_filter_data_errors():
    x = np.random.default_rng(0).standard_normal((2, 500))
    bad = x.copy()
    bad[0, 7] = np.inf
    with pytest.raises(DataError, match=r"1 NaN or infinite value.*interpolate or drop"):
        filter_data(bad, 128.0, 4.0, 45.0)
    with pytest.raises(ParameterError, match=r"floating-point array, got dtype int64.*astype"):
        filter_data(np.zeros((2, 500), dtype=np.int64), 128.0, 4.0, 45.0)
    with pytest.raises(ParameterError, match=r"at least 1 dimension\(s\), got shape \(\)"):
        filter_data(np.float64(1.0), 128.0, 4.0, 45.0)
    with pytest.raises(DataError, match=r"has 27 samples .* needs more than 27 .*pass at least "
                                        r"28 samples.*phase='causal'"):
        filter_data(x[:, :27], 128.0, 4.0, 45.0)
    with pytest.raises(DataError, match=r"0 samples"):
        filter_data(x[:, :0], 128.0, 4.0, 45.0, phase="causal")


def test_notch_errors():
    x = np.zeros((2, 500))
    with pytest.raises(ParameterError, match=r"notch frequency=130.0 must be below Nyquist"):
        notch_filter(x, 250.0, freqs=(50.0, 130.0))
    with pytest.raises(ParameterError, match=r"quality=0.0 is out of range.*positive"):
        notch_filter(x, 250.0, quality=0.0)
    with pytest.raises(ParameterError, match=r"freqs must be a frequency.*got None"):
        notch_filter(x, 250.0, freqs=None)
    with pytest.raises(ParameterError, match=r"must not be empty"):
        notch_filter(x, 250.0, freqs=())


def test_nan_input_is_a_value_error_like_numpy_and_scipy():
    # the `except ValueError` that catches scipy's own bad-value errors catches ours too
    data = np.ones((2, 512))
    data[1, 100] = np.inf
    caught = []
    for func in (lambda: signal.sosfiltfilt(signal.butter(4, 0.2, output="sos"),
                                            np.ones(5)),  # scipy: input too short
                 lambda: filter_data(data, 128.0, 1.0, 40.0)):
        try:
            func()
        except ValueError as err:
            caught.append(type(err).__name__)
    assert caught == ["ValueError", "DataError"]
