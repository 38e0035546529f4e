"""`physioemo acquire`: recordings through the CLI, playback, and one-line errors."""

import json

import mne
import numpy as np
import pytest

from physioemo.cli.main import main

STEP = 4000.0 / 65535  # EDF step of the synthetic profile's +-2000 uV range


def _one_line_error(capsys, *fragments):
    err = capsys.readouterr().err.strip().splitlines()
    err = [line for line in err if " INFO " not in line and " WARNING " not in line]
    assert len(err) == 1, err
    assert "Traceback" not in err[0]
    for frag in fragments:
        assert frag in err[0], err[0]
    return err[0]


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "rec.edf"
    assert main(["acquire", "--device", "synthetic", "--out", str(out), "--duration", "2",
                 "--no-tui", "-q"]) == 0
    return out


def test_acquire_writes_edf_and_sidecar(recorded):
    raw = mne.io.read_raw_edf(recorded, verbose="error")
    assert raw.n_times == 500 and raw.info["sfreq"] == 250.0 and len(raw.ch_names) == 16
    meta = json.loads(recorded.with_suffix(".json").read_text())
    assert meta["device"] == "synthetic" and meta["profile"]["board_id"] == -1
    assert meta["settings"]["duration"] == 2.0 and meta["source"]["board_id"] == -1
    assert meta["telemetry"]["dropped_samples"] == 0


def test_playback_reproduces_a_recording(recorded, tmp_path):
    out = tmp_path / "replay.edf"
    assert main(["acquire", "--device", "playback", "--file", str(recorded), "--speed", "5",
                 "--out", str(out), "--no-tui", "-q"]) == 0
    a = mne.io.read_raw_edf(recorded, preload=True, verbose="error").get_data()
    b = mne.io.read_raw_edf(out, preload=True, verbose="error").get_data()
    assert a.shape == b.shape == (16, 500)
    # same digital values: the replayed samples are the recorded ones
    assert np.abs(a - b).max() * 1e6 <= STEP * 1e-3
    meta = json.loads(out.with_suffix(".json").read_text())
    assert meta["device"] == "playback" and meta["layout_device"] == "synthetic"
    assert meta["telemetry"]["dropped_samples"] == 0


def test_existing_output_needs_force(recorded, capsys):
    before = recorded.read_bytes()
    assert main(["acquire", "--device", "synthetic", "--out", str(recorded),
                 "--duration", "1", "--no-tui"]) == 1
    _one_line_error(capsys, "already exists", "--force")
    assert recorded.read_bytes() == before


def test_force_replaces(tmp_path):
    out = tmp_path / "f.edf"
    out.write_bytes(b"old")
    assert main(["acquire", "--device", "synthetic", "--out", str(out), "--duration", "1",
                 "--no-tui", "--force", "-q"]) == 0
    assert mne.io.read_raw_edf(out, verbose="error").n_times == 250


@pytest.mark.parametrize("argv, code, fragments", [
    (["--device", "nope"], 2, ["unknown device 'nope'", "synthetic", "physioemo devices"]),
    (["--device", "cyton"], 2, ["needs --serial-port", "/dev/ttyUSB0"]),
    (["--device", "cyton", "--serial-port", "/dev/ttyPHYSIOEMO_NONE"], 1,
     ["/dev/ttyPHYSIOEMO_NONE", "missing or busy", "--serial-port"]),
    (["--device", "emotiv-epoc"], 1, ["no driver", "physioemo devices"]),
    (["--device", "synthetic", "--ip", "1.2.3.4"], 2, ["does not use --ip"]),
    (["--device", "synthetic", "--markers", "tcp:abc"], 2, ["tcp:abc", "tcp:5000"]),
    (["--device", "playback", "--file", "/nonexistent.csv"], 1, ["does not exist"]),
])
def test_errors_are_one_line(argv, code, fragments, tmp_path, capsys):
    out = tmp_path / "x.edf"
    assert main(["acquire", *argv, "--out", str(out), "--duration", "1", "--no-tui"]) == code
    _one_line_error(capsys, *fragments)
    assert not out.exists()


def test_unwritable_output_path(capsys):
    assert main(["acquire", "--device", "synthetic", "--out", "/proc/physioemo.edf",
                 "--duration", "1", "--no-tui"]) == 1
    _one_line_error(capsys, "not writable", "--out")


def test_wrong_sampling_rate_in_playback_file(tmp_path, capsys):
    rows = np.zeros((32, 300))
    rows[0] = np.arange(300) % 256
    rows[30] = 1.0 + np.arange(300) / 500.0  # 500 Hz, but the synthetic board is 250 Hz
    path = tmp_path / "fast.csv"
    np.savetxt(path, rows.T, delimiter="\t")
    out = tmp_path / "x.edf"
    assert main(["acquire", "--device", "playback", "--file", str(path), "--out", str(out),
                 "--no-tui"]) == 1
    _one_line_error(capsys, "sampled at 500 Hz", "records at 250 Hz", "--master")
    assert not out.exists()


def test_debug_shows_the_traceback(tmp_path):
    with pytest.raises(Exception, match="unknown device"):
        main(["acquire", "--device", "nope", "--out", str(tmp_path / "x.edf"), "--debug"])


def test_ctrl_c_stops_cleanly_at_a_whole_second(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    from physioemo.acquisition.recorder import PADDING_ANNOTATION, journal_path

    out = tmp_path / "ctrl-c.edf"
    proc = subprocess.Popen([sys.executable, "-m", "physioemo.cli.main", "acquire",
                             "--device", "synthetic", "--out", str(out), "--no-tui", "-q"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    samples = journal_path(out) / "samples.f64"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        if samples.exists() and samples.stat().st_size >= 16 * 8 * int(250 * 2.3):
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 0, stderr.decode()
    assert stdout.decode().strip() == str(out)
    raw = mne.io.read_raw_edf(out, verbose="error")
    # finished the second it was in (>= 2.3 s were recorded): whole seconds, no padding
    assert raw.n_times % 250 == 0 and raw.n_times >= 750
    assert PADDING_ANNOTATION not in raw.annotations.description
    meta = json.loads(out.with_suffix(".json").read_text())
    assert meta["padded_samples"] == 0 and meta["n_times"] == raw.n_times
    assert not journal_path(out).exists() and os.path.getsize(out) > 0


def test_config_file_keys_are_option_names(tmp_path, capsys):
    out = tmp_path / "cfg.edf"
    cfg = tmp_path / "acquire.yaml"
    cfg.write_text(f"device: synthetic\nout: {out}\nduration: 1\nno_tui: true\n"
                   "l_freq: 2.0\nkind: de\n")
    assert main(["acquire", "--config", str(cfg), "--h-freq", "30", "-q"]) == 0
    meta = json.loads(out.with_suffix(".json").read_text())
    assert meta["settings"]["l_freq"] == 2.0 and meta["settings"]["h_freq"] == 30.0
    assert meta["online"]["kind"] == "de" and meta["online"]["h_freq"] == 30.0
    cfg.write_text("device: synthetic\nsampling_rate: 250\n")
    assert main(["acquire", "--config", str(cfg)]) == 2
    _one_line_error(capsys, "unknown key(s) ['sampling_rate']")


def test_device_and_out_are_required(capsys):
    assert main(["acquire", "--device", "synthetic"]) == 2
    _one_line_error(capsys, "--out is required")


def test_bad_out_is_refused_before_the_device_starts(tmp_path, capsys, monkeypatch):
    import physioemo.acquisition.brainflow_source as bfs

    def boom(*a, **k):  # pragma: no cover - must not be reached
        raise AssertionError("the device was started before --out was checked")

    monkeypatch.setattr(bfs, "BrainFlowSource", boom)
    folder = tmp_path / "dir.edf"
    folder.mkdir()
    assert main(["acquire", "--device", "synthetic", "--out", str(folder), "--duration",
                 "5", "--no-tui", "--force"]) == 1
    _one_line_error(capsys, "is a folder, where a file is to be written")
    playback = tmp_path / "in.edf"
    playback.write_bytes(b"edf")
    assert main(["acquire", "--device", "playback", "--file", str(playback), "--out",
                 str(playback), "--no-tui", "--force"]) == 1
    _one_line_error(capsys, "also an input", "not even with --force")
    assert playback.read_bytes() == b"edf"
