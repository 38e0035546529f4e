"""`physioemo recover` after `kill -9` of a recording loses at most the last second."""

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import mne
import numpy as np
import pytest

from physioemo.acquisition.recorder import journal_path, read_journal, sidecar_path
from physioemo.cli.main import main


def _env():
    cfg = Path(tempfile.gettempdir()) / "physioemo-tests-lsl-recover.cfg"
    cfg.write_text("[ports]\nIPv6 = disable\n[multicast]\nResolveScope = machine\n"
                   "AddressesOverride = {127.0.0.1}\nKnownPeers = {127.0.0.1}\n")
    return {**os.environ, "LSLAPICFG": str(cfg)}


def test_kill_9_then_recover_loses_at_most_one_second(tmp_path, capsys):
    out = tmp_path / "crash.edf"
    proc = subprocess.Popen(
        [sys.executable, "-m", "physioemo.cli.main", "acquire", "--device", "synthetic",
         "--out", str(out), "--duration", "60", "--no-tui", "-q"],
        env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    samples = journal_path(out) / "samples.f64"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if samples.exists() and samples.stat().st_size >= 16 * 8 * 250 * 3:
                break
            if proc.poll() is not None:
                pytest.fail(f"recording ended early: {proc.stderr.read().decode()}")
            time.sleep(0.05)
        time.sleep(0.7)  # kill at an arbitrary point inside a second
        killed_at = time.time()
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    assert not out.exists()  # nothing at the output path looks complete
    header, journal_data, _, _ = read_journal(journal_path(out))
    # samples the board had produced when the process died (it stamps them on the
    # host clock, starting at the header's start time)
    produced = (killed_at - header["start_time"]) * 250.0

    assert main(["recover", str(out)]) == 0
    assert capsys.readouterr().out.strip() == str(out)
    meta = json.loads(sidecar_path(out).read_text())
    n = meta["n_times"]
    assert meta["recovered"] is True and n == journal_data.shape[1]
    assert produced - 250 <= n <= produced + 5
    raw = mne.io.read_raw_edf(out, preload=True, verbose="error")
    got = raw.get_data()[:, :n] * 1e6
    np.testing.assert_allclose(got, journal_data, atol=4000 / 65535 / 2 + 1e-9)
    assert not journal_path(out).exists()


def test_recover_errors(tmp_path, capsys):
    assert main(["recover", str(tmp_path / "none.edf")]) == 1
    err = capsys.readouterr().err.strip()
    assert "no recording journal" in err and len(err.splitlines()) == 1


@pytest.mark.parametrize("damage, fragments", [
    ("empty", ["holds no samples", "nothing to recover"]),
    ("headers", ["no readable header", "samples are kept untouched", "restore header.json"]),
])
def test_recover_bad_journals_one_line(tmp_path, capsys, damage, fragments):
    from physioemo.acquisition.recorder import Recorder

    out = tmp_path / "r.edf"
    rec = Recorder(out, ["A"], 250.0, physical_min=-1.0, physical_max=1.0).start()
    if damage == "headers":
        rec.write(np.zeros((1, 100)))
    rec.abort()
    if damage == "headers":
        for name in ("header.json", "header.bak.json"):
            path = journal_path(out) / name
            path.write_bytes(path.read_bytes()[:40])
    assert main(["recover", str(out)]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert all(f in err for f in fragments), err
    assert journal_path(out).is_dir() and not out.exists()
    assert os.listdir(tmp_path) == ["r.edf.journal"]  # no temp file either


def test_recover_a_journal_with_a_bad_line_says_so_and_keeps_the_samples(tmp_path):
    from physioemo.acquisition.recorder import Recorder

    out = tmp_path / "x.edf"
    rec = Recorder(out, ["A"], 250.0, physical_min=-1.0, physical_max=1.0).start()
    rec.write(np.full((1, 300), 0.5))
    rec.abort()
    with open(journal_path(out) / "annotations.jsonl", "a") as fid:
        fid.write('{"onset": "x"}\n')
    # in a process of its own: the log goes to a real stderr
    done = subprocess.run([sys.executable, "-m", "physioemo.cli.main", "recover", str(out)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == str(out)
    assert "Traceback" not in done.stderr
    assert "line 1 unreadable (onset 'x' is not a number >= 0)" in done.stderr
    raw = mne.io.read_raw_edf(out, preload=True, verbose="error")
    np.testing.assert_allclose(raw.get_data()[0, :300] * 1e6, 0.5, atol=2 / 65535)
    assert sorted(os.listdir(tmp_path)) == ["x.edf", "x.json"]
