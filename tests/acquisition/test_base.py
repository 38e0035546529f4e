"""The Source contract, one test class run over every source: BrainFlow's synthetic board,
BrainFlow's playback board, and replay of a physioemo EDF+ recording."""

import time

import numpy as np
import pytest

from physioemo.acquisition.base import Source
from physioemo.acquisition.brainflow_source import BrainFlowSource
from physioemo.acquisition.recorder import write_edf
from physioemo.acquisition.replay import EDFSource
from physioemo.exceptions import DeviceError

N_FILE = 500  # 2 s at 250 Hz


@pytest.fixture(scope="module")
def file_data():
    rng = np.random.default_rng(0)
    return rng.normal(0, 30, (16, N_FILE)).round(6)


@pytest.fixture(scope="module")
def playback_csv(tmp_path_factory, file_data):
    # a BrainFlow CSV in the synthetic board's 32-row layout, written by hand
    rows = np.zeros((32, N_FILE))
    rows[0] = np.arange(N_FILE) % 256
    rows[1:17] = file_data
    rows[30] = 1_700_000_000.0 + np.arange(N_FILE) / 250.0
    path = tmp_path_factory.mktemp("pb") / "synthetic.csv"
    np.savetxt(path, rows.T, delimiter="\t", fmt="%.6f")
    return path


@pytest.fixture(scope="module")
def edf_file(tmp_path_factory, file_data):
    path = tmp_path_factory.mktemp("edf") / "rec.edf"
    names = [f"EEG{i:02d}" for i in range(16)]
    write_edf(path, file_data, 250.0, names, physical_min=-2000.0, physical_max=2000.0,
              start_time=1_700_000_000.0)
    return path


@pytest.fixture(params=["synthetic", "playback", "edf"])
def make_source(request, playback_csv, edf_file):
    def make():
        if request.param == "synthetic":
            return BrainFlowSource("synthetic")
        if request.param == "playback":
            return BrainFlowSource("playback", file=playback_csv, speed=4.0)
        return EDFSource(edf_file, speed=4.0)
    make.kind = request.param
    return make


def _collect(src, n_min, timeout=10.0):
    chunks = []
    deadline = time.monotonic() + timeout
    while sum(c.n_times for c in chunks) < n_min and time.monotonic() < deadline:
        chunk = src.read()
        chunks.append(chunk)
        if not chunk.n_times:
            time.sleep(0.01)
    return chunks


class TestSourceContract:
    def test_is_a_source_with_channels_and_rate(self, make_source):
        src = make_source()
        assert isinstance(src, Source)
        assert src.n_channels == 16 and len(set(src.ch_names)) == 16
        assert src.sfreq == 250.0 and src.units == "uV"
        assert not src.running and src.n_samples == 0

    def test_read_before_start_is_an_error(self, make_source):
        with pytest.raises(DeviceError, match="not started; call start"):
            make_source().read()

    def test_chunks_tile_the_stream(self, make_source):
        with make_source() as src:
            assert src.running
            with pytest.raises(DeviceError, match="already started"):
                src.start()
            chunks = _collect(src, 200)
        assert not src.running
        total = sum(c.n_times for c in chunks)
        assert total >= 200 and src.n_samples == total
        expected_first = 0
        last_ts = -np.inf
        for c in chunks:
            assert c.data.dtype == np.float64 and c.data.flags.c_contiguous
            assert c.data.shape == (16, c.n_times) and c.timestamps.shape == (c.n_times,)
            assert c.first_sample == expected_first
            expected_first += c.n_times
            if c.n_times:
                assert c.timestamps[0] >= last_ts
                assert np.all(np.diff(c.timestamps) >= 0)
                last_ts = c.timestamps[-1]
                assert np.isfinite(c.data).all()
        with pytest.raises(DeviceError, match="not started"):
            src.read()

    def test_max_samples_limits_a_read(self, make_source):
        with make_source() as src:
            time.sleep(0.3)
            chunk = src.read(max_samples=5)
            assert chunk.n_times <= 5
            rest = _collect(src, 20)
        assert rest[0].first_sample == chunk.n_times

    def test_stop_twice_and_restart(self, make_source):
        src = make_source()
        src.start()
        _collect(src, 10)
        src.stop()
        src.stop()
        src.start()  # a fresh stream: the counter restarts
        assert src.n_samples == 0
        chunks = _collect(src, 10)
        src.stop()
        assert chunks[0].first_sample == 0


@pytest.mark.parametrize("kind", ["playback", "edf"])
def test_file_sources_deliver_the_file(kind, playback_csv, edf_file, file_data):
    if kind == "playback":
        src = BrainFlowSource("playback", file=playback_csv, speed=4.0)
    else:
        src = EDFSource(edf_file, speed=4.0)
    with src:
        chunks = _collect(src, N_FILE)
        assert src.exhausted
        extra = src.read()
    data = np.concatenate([c.data for c in chunks], axis=1)
    assert data.shape == (16, N_FILE) and extra.n_times == 0
    # playback: exact CSV values; EDF: within half a 16-bit step of +-2000 uV
    tol = 1e-9 if kind == "playback" else 4000 / 65535 / 2 + 1e-9
    np.testing.assert_allclose(data, file_data, rtol=0, atol=tol)
    ts = np.concatenate([c.timestamps for c in chunks])
    # 2 s of data replayed 4x faster than real time: ~0.5 s of host time
    assert 0.3 < ts[-1] - ts[0] < 1.2
