"""Crash-safe EDF+/BDF+ recording: journal, atomic EDF, recovery, disk errors."""

import errno
import json

import mne
import numpy as np
import pytest

from physioemo.acquisition.journal import JournalWriter
from physioemo.acquisition.recorder import (
    PADDING_ANNOTATION,
    Recorder,
    check_output,
    journal_path,
    recover,
    sidecar_path,
    write_edf,
)
from physioemo.acquisition.replay import EDFSource
from physioemo.acquisition.session import Acquisition
from physioemo.exceptions import DataError, ParameterError

NAMES = ["Fz", "Cz", "Pz"]


def _read(path):
    return mne.io.read_raw_edf(path, preload=True, verbose="error")


@pytest.fixture
def data():
    return np.random.default_rng(0).normal(0, 40, (3, 1000))


def _recorder(path, **kw):
    return Recorder(path, NAMES, 250.0, physical_min=-500.0, physical_max=500.0, **kw)


def test_write_edf_pads_the_last_record_and_says_so(tmp_path, data):
    path = tmp_path / "pad.edf"
    stats = write_edf(path, data[:, :537], 250.0, NAMES, physical_min=-500.0,
                      physical_max=500.0, annotations=[{"onset": 0.5, "duration": 0,
                                                        "description": "stim"}])
    assert (stats["padded"], stats["clipped"], stats["not_stored"]) == (213, 0, 0)
    assert stats["annotations"] == [{"edf": "exact"}] and stats["capacity"] == 3 * 64
    raw = _read(path)
    assert raw.n_times == 750
    got = raw.get_data() * 1e6
    np.testing.assert_allclose(got[:, :537], data[:, :537], atol=1000 / 65535 / 2 + 1e-9)
    np.testing.assert_allclose(got[:, 537:], got[:, 536:537].repeat(213, axis=1), atol=1e-9)
    ann = raw.annotations
    assert list(ann.description) == ["stim", PADDING_ANNOTATION]
    np.testing.assert_allclose(ann.onset, [0.5, 537 / 250])
    assert ann.duration[1] == pytest.approx(213 / 250)


def test_bdf_keeps_24_bits(tmp_path, data):
    path = tmp_path / "x.bdf"
    write_edf(path, data, 250.0, NAMES, physical_min=-187500.0, physical_max=187500.0,
              filetype="bdf")
    got = mne.io.read_raw_bdf(path, preload=True, verbose="error").get_data() * 1e6
    step = 375000 / (2 ** 24 - 1)
    assert np.abs(got - data).max() <= step / 2 + 1e-9


def test_clipping_is_counted(tmp_path, data):
    data = data.copy()
    data[0, :10] = 900.0
    stats = write_edf(tmp_path / "c.edf", data, 250.0, NAMES, physical_min=-500.0,
                      physical_max=500.0)
    assert stats["clipped"] == 10
    got = _read(tmp_path / "c.edf").get_data()[0, :10] * 1e6
    np.testing.assert_allclose(got, 500.0, atol=1e-9)


def test_clean_close_writes_edf_and_sidecar_and_removes_journal(tmp_path, data):
    path = tmp_path / "rec.edf"
    rec = _recorder(path, metadata={"device": "test"}).start(start_time=1_700_000_000.25)
    for i in range(0, 1000, 37):
        rec.write(data[:, i:i + 37])
        assert not path.exists()  # never looks complete while recording
    rec.annotate(1.5, "stim")
    out = rec.close(metadata={"telemetry": {"dropped_samples": 0}})
    assert out == path and not journal_path(path).exists()
    raw = _read(path)
    np.testing.assert_allclose(raw.get_data() * 1e6, data, atol=1000 / 65535 / 2 + 1e-9)
    assert list(raw.annotations.description) == ["stim"]
    meta = json.loads(sidecar_path(path).read_text())
    assert meta["device"] == "test" and meta["n_times"] == 1000
    assert meta["telemetry"] == {"dropped_samples": 0} and meta["recovered"] is False
    assert meta["start_timestamp"] == 1_700_000_000.25
    assert raw.info["meas_date"].timestamp() == pytest.approx(1_700_000_000, abs=1)


def test_recover_after_a_crash_keeps_every_complete_sample(tmp_path, data):
    path = tmp_path / "crash.edf"
    rec = _recorder(path, flush_interval_s=0.0).start()
    rec.write(data[:, :600])
    rec.annotate(0.4, "stim")
    rec.flush()
    # simulate the crash: the process dies mid-write (its lock goes), leaving torn records
    rec._journal.release()
    journal = journal_path(path)
    with open(journal / "samples.f64", "ab") as fid:
        fid.write(np.float64(1.0).tobytes() * 2)  # 2 of the 3 channels of a sample
    with open(journal / "annotations.jsonl", "a") as fid:
        fid.write('{"onset": 2.0, "descr')
    assert not path.exists()
    out = recover(path)
    raw = _read(out)
    assert raw.n_times == 750  # 600 samples, padded to whole 1-s records
    np.testing.assert_allclose(raw.get_data()[:, :600] * 1e6, data[:, :600],
                               atol=1000 / 65535 / 2 + 1e-9)
    assert list(raw.annotations.description) == ["stim", PADDING_ANNOTATION]
    meta = json.loads(sidecar_path(out).read_text())
    assert meta["recovered"] is True and meta["n_times"] == 600
    with pytest.raises(DataError, match="needs no recovery"):
        recover(path)


def test_existing_output_and_journal_are_never_overwritten(tmp_path):
    path = tmp_path / "x.edf"
    path.write_bytes(b"old")
    with pytest.raises(DataError, match="already exists.*--force"):
        check_output(path)
    check_output(path, force=True)
    path.unlink()
    journal_path(path).mkdir()
    with pytest.raises(DataError, match="ended without closing.*physioemo recover"):
        check_output(path)
    with pytest.raises(ParameterError, match=r"must end in \.edf"):
        check_output(tmp_path / "x.csv")
    with pytest.raises(DataError, match="does not exist"):
        check_output(tmp_path / "missing" / "x.edf")


def test_unwritable_folder_is_refused(tmp_path):
    with pytest.raises(DataError, match="not writable"):
        check_output("/proc/physioemo-test.edf")


class _FullDisk:
    """A file that accepts ``budget`` bytes, then fails like a full disk."""

    def __init__(self, fid, budget):
        self.fid, self.budget = fid, budget

    def write(self, b):
        if len(b) > self.budget:  # like a real disk: what fits is written, then ENOSPC
            self.fid.write(b[:self.budget])
            self.budget = 0
            raise OSError(errno.ENOSPC, "No space left on device")
        self.budget -= len(b)
        return self.fid.write(b)

    def __getattr__(self, name):
        return getattr(self.fid, name)


def test_disk_full_stops_cleanly_and_keeps_what_was_recorded(tmp_path, data, monkeypatch):
    src_path = tmp_path / "src.edf"
    write_edf(src_path, data, 250.0, NAMES, physical_min=-500.0, physical_max=500.0)
    real_open = JournalWriter._open

    def fake_open(self, name, mode):
        fid = real_open(self, name, mode)
        return _FullDisk(fid, 3 * 8 * 500) if name == "samples.f64" else fid

    monkeypatch.setattr(JournalWriter, "_open", fake_open)
    out = tmp_path / "full.edf"
    acq = Acquisition(EDFSource(src_path, speed=None), _recorder(out))
    with pytest.raises(DataError, match="disk is full.*recorded so far are kept"):
        acq.run()
    raw = _read(out)  # what reached the journal became a valid EDF+
    n = json.loads(sidecar_path(out).read_text())["n_times"]
    assert n == 500
    truth = _read(src_path).get_data()[:, :n]
    np.testing.assert_allclose(raw.get_data()[:, :n], truth, atol=1e-12)
    assert not journal_path(out).exists()


def test_recorder_validates(tmp_path):
    with pytest.raises(ParameterError, match="physical_min=5.0 must be below"):
        Recorder(tmp_path / "a.edf", NAMES, 250.0, physical_min=5.0,
                 physical_max=1.0).start()
    with pytest.raises(ParameterError, match="whole number of Hz"):
        Recorder(tmp_path / "a.edf", NAMES, 250.5, physical_min=-1.0,
                 physical_max=1.0).start()
    rec = _recorder(tmp_path / "b.edf").start()
    with pytest.raises(ParameterError, match=r"shape \(3, n_times\)"):
        rec.write(np.zeros((2, 5)))
    with pytest.raises(DataError, match="holds no samples.*nothing to recover"):
        rec.close()


def test_many_annotations_in_a_short_recording_all_survive(tmp_path, data):
    path = tmp_path / "many.edf"
    anns = [{"onset": i * 0.01, "duration": 0, "description": f"m{i}"} for i in range(127)]
    stats = write_edf(path, data[:, :500], 250.0, NAMES, physical_min=-500.0,
                      physical_max=500.0, annotations=anns)
    got = _read(path).annotations
    assert list(got.description) == [f"m{i}" for i in range(127)]
    np.testing.assert_allclose(got.onset, np.arange(127) * 0.01, atol=1e-6)
    assert stats["not_stored"] == 0
    # beyond 64 per second the file cannot hold them: the first 127 in time, then one
    # that says how many more are in the sidecar; each one's fate is returned
    stats = write_edf(tmp_path / "over.edf", data[:, :500], 250.0, NAMES,
                      physical_min=-500.0, physical_max=500.0, annotations=anns * 2)
    assert stats["not_stored"] == 2 * 127 - 127
    got = _read(tmp_path / "over.edf").annotations
    assert len(got) == 128 and got.description[-1] == "physioemo: 127 more in sidecar JSON"
    # sorted by onset: m_i and its copy are neighbours; the 127 earliest are stored
    stored = [i for i, s in enumerate(stats["annotations"]) if s["edf"] != "not stored"]
    assert sorted(stored) == sorted([i for i in range(64)] + [127 + i for i in range(63)])


def test_journal_reaches_the_file_within_the_flush_interval(tmp_path, data):
    import time

    rec = _recorder(tmp_path / "f.edf", flush_interval_s=0.2).start()
    samples = journal_path(tmp_path / "f.edf") / "samples.f64"
    rec.write(data[:, :10])  # 240 bytes: still in the process's buffer
    assert samples.stat().st_size == 0
    rec.flush_if_due()
    assert samples.stat().st_size == 0
    time.sleep(0.25)
    rec.flush_if_due()  # what the acquisition loop calls while no data arrives
    assert samples.stat().st_size == 240
    rec.close()


def test_recover_into_a_folder_says_so_and_keeps_the_journal(tmp_path, data):
    path = tmp_path / "crash.edf"
    rec = _recorder(path, flush_interval_s=0.0).start()
    rec.write(data[:, :300])
    rec._journal.release()  # the process dies: its lock goes, the journal stays
    path.mkdir()  # the output name is now a folder
    for force in (False, True):
        with pytest.raises(DataError, match="is a folder, where a file is to be written"):
            recover(path, force=force)
    assert (journal_path(path) / "samples.f64").stat().st_size == 300 * 3 * 8
    path.rmdir()
    assert _read(recover(path)).n_times == 500  # 300 samples, padded to whole records


def test_check_output_never_replaces_the_playback_input(tmp_path):
    src = tmp_path / "in.edf"
    src.write_bytes(b"recording")
    with pytest.raises(DataError, match="also an input"):
        check_output(src, force=True, inputs=(src,))
    assert src.read_bytes() == b"recording"
