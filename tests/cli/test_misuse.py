"""Every command refuses bad input in exactly one line, without a traceback (issue 13).

The table holds one misuse per command; a new command without one fails
``test_every_command_has_a_misuse_case``.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from physioemo.cli.main import COMMANDS, main
from physioemo.datasets.dreamer import EEG_CHANNELS
from physioemo.models import build_model, save_checkpoint

EXE = __import__("shutil").which("physioemo") or str(Path(sys.executable).with_name("physioemo"))


@pytest.fixture
def files(tmp_path, monkeypatch):
    """A folder, a recording-like file and a checkpoint; cwd is tmp_path."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PHYSIOEMO_DREAMER_PATH", raising=False)
    monkeypatch.setenv("PHYSIOEMO_CACHE_DIR", str(tmp_path / "cache"))
    (tmp_path / "folder").mkdir()
    (tmp_path / "dir.edf").mkdir()
    (tmp_path / "rec.edf").write_bytes(b"0" * 256)
    torch.manual_seed(0)
    save_checkpoint(tmp_path / "model.pt", build_model("histn").eval(),
                    extra={"ch_names": list(EEG_CHANNELS), "sfreq": 128.0})
    return tmp_path


#: command -> (arguments, exit code, fragment of the one error line)
CASES = {
    "demo": (["--out", "/proc/physioemo-demo", "--tiny"], 1, "not writable"),
    "acquire": (["--device", "synthetic", "--out", "dir.edf", "--duration", "5", "--no-tui",
                 "--force"], 1, "is a folder, where a file is to be written"),
    "recover": (["missing.edf"], 1, "no recording journal"),
    "devices": (["--name", "nope"], 2, "unknown device 'nope'"),
    "evaluate": (["--dreamer", "folder", "--out", "run"], 1, "is a directory"),
    "predict": (["--checkpoint", "model.pt", "--edf", "rec.edf", "--out", "model.pt",
                 "--force"], 1, "is also an input of this command"),
    "tune": (["--out", "/proc/physioemo-tune", "--dreamer", "rec.edf"], 1, "not writable"),
    "info": (["--dreamer", "folder"], 1, "is a directory"),
    "synth-dreamer": (["--out", "folder"], 1, "is a folder, where a file is to be written"),
}


def _the_error_line(err):
    lines = [ln for ln in err.strip().splitlines()
             if " INFO " not in ln and " WARNING " not in ln]
    assert len(lines) == 1, lines
    assert "Traceback" not in err
    return lines[0]


def test_every_command_has_a_misuse_case():
    assert sorted(CASES) == sorted(COMMANDS)


@pytest.mark.parametrize("command", sorted(CASES))
def test_each_command_refuses_bad_input_in_one_line(files, capsys, command):
    argv, code, fragment = CASES[command]
    before = {p.name: p.read_bytes() for p in files.iterdir() if p.is_file()}
    assert main([command, *argv]) == code
    line = _the_error_line(capsys.readouterr().err)
    assert line.startswith(f"physioemo {command}: error: ") and fragment in line, line
    assert {p.name: p.read_bytes() for p in files.iterdir() if p.is_file()} == before
    assert not (files / "run").exists()


def _run(argv, env_extra=None, cwd=None):
    env = dict(os.environ, **(env_extra or {}))
    return subprocess.run([EXE, *argv], capture_output=True, text=True, env=env, cwd=cwd,
                          timeout=300)


def test_installed_entry_point_predict_onto_its_checkpoint(files):
    res = _run(["predict", *CASES["predict"][0][:-1]], cwd=files)
    assert res.returncode == 1
    line = _the_error_line(res.stderr)
    assert "is also an input" in line and "not even with --force" in line


def test_environment_force_does_not_replace_a_recording(files):
    """Case 4: PHYSIOEMO_FORCE=yes in the environment replaced a 15-s recording."""
    rec = files / "keep.edf"
    rec.write_bytes(b"a recording")
    res = _run(["acquire", "--device", "synthetic", "--out", str(rec), "--duration", "1",
                "--no-tui"], {"PHYSIOEMO_FORCE": "yes", "PHYSIOEMO_OUT": "x.edf"}, cwd=files)
    assert res.returncode == 1
    line = _the_error_line(res.stderr)
    assert "already exists" in line and "--force" in line
    assert rec.read_bytes() == b"a recording" and not (files / "x.edf").exists()
    assert "ignoring the environment variable PHYSIOEMO_FORCE" in res.stderr
    assert "ignoring the environment variable PHYSIOEMO_OUT" in res.stderr
