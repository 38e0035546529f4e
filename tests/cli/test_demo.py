"""`physioemo demo`: one tiny end-to-end run, its outputs checked with MNE/sklearn/numpy."""

import contextlib
import csv
import io
import json
from argparse import Namespace
from pathlib import Path

import mne
import numpy as np
import pytest
import yaml
from sklearn.metrics import f1_score

from physioemo.cli import demo
from physioemo.cli.main import main
from physioemo.exceptions import DataError

# The DREAMER/Emotiv EPOC channel order (DREAMER documentation) and the profile's extras.
CHANNELS = ["AF3", "F7", "F3", "FC5", "T7", "P7", "O1", "O2", "P8", "T8", "FC6", "F4",
            "F8", "AF4", "Fz", "Cz"]
SFREQ, SECONDS = 250.0, 4.0  # synthetic board rate; --tiny recording length
MARKERS = ["baseline", "stimulus 1", "rest", "stimulus 2", "end"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "out"
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        code = main(["demo", "--out", str(out), "--tiny", "--seed", "0", "-q"])
    assert code == 0, stdout.getvalue()
    return out, stdout.getvalue()


def test_recording_is_edf_plus_with_the_sent_markers(run):
    out, _ = run
    raw = mne.io.read_raw_edf(out / "recording" / "recording.edf", verbose="error")
    assert raw.info["sfreq"] == SFREQ and raw.ch_names == CHANNELS
    # --duration records exactly round(seconds * sfreq) samples; at most one 1-s record more
    assert SFREQ * SECONDS <= raw.n_times < SFREQ * (SECONDS + 1)
    ours = [(a["onset"], a["description"]) for a in raw.annotations
            if a["description"] in MARKERS]
    assert [d for _, d in ours] == MARKERS
    onsets = np.array([o for o, _ in ours])
    assert np.all(np.diff(onsets) > 0) and 0 <= onsets[0] and onsets[-1] < SECONDS
    meta = json.loads((out / "recording" / "recording.json").read_text())
    assert meta["device"] == "synthetic-epoc" and meta["n_markers"] >= len(MARKERS)
    assert meta["command"][:4] == ["physioemo", "acquire", "--device", "synthetic-epoc"]
    with open(out / "recording" / "schedule.tsv") as fid:
        sent = list(csv.DictReader(fid, delimiter="\t"))
    assert [r["marker"] for r in sent] == MARKERS
    # the gaps between markers in the file are the gaps between their sending (a thread,
    # over TCP; placed on samples by host time), within the board's chunking jitter, and
    # the sender kept to the schedule
    sent_s = np.array([float(r["sent_s"]) for r in sent])
    np.testing.assert_allclose(np.diff(onsets), np.diff(sent_s), atol=0.1)
    planned = np.diff([frac * SECONDS for frac, _ in demo.SCHEDULE])
    np.testing.assert_allclose(np.diff(sent_s), planned, atol=0.2)


def _records(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_results_hold_both_smoothings_and_f1_matches_the_confusion_matrices(run):
    out, stdout = run
    summary = json.loads((out / "demo.json").read_text())
    for smoothing in ("gaussian", "onehot"):
        recs = _records(out / "evaluate" / smoothing / "results.jsonl")
        assert {(r["subject"], r["fold"], r["smoothing"]) for r in recs} == {
            (1, 2, smoothing), (2, 2, smoothing)}
        for r in recs:
            cm = np.array(r["confusion"])
            assert cm.sum() == demo.QUICK_RECIPE["n_test"] == r["metrics"]["n_windows"]
            # independent oracle: sklearn on the (true, predicted) pairs of the matrix
            y_true = np.repeat(np.arange(5), cm.sum(1))
            y_pred = np.concatenate([np.repeat(np.arange(5), row) for row in cm])
            assert r["metrics"]["weighted_f1"] == pytest.approx(
                100 * f1_score(y_true, y_pred, average="weighted"), abs=1e-9)
            assert r["metrics"]["accuracy"] == pytest.approx(100 * np.trace(cm) / cm.sum())
            assert 0 <= r["metrics"]["seq2hr"] <= 100
        for metric in ("weighted_f1", "seq2hr"):
            mean = np.mean([r["metrics"][metric] for r in recs])
            assert summary["numbers"][smoothing][metric] == pytest.approx(mean)
            assert f"{mean:.2f}" in (out / "report.html").read_text()
        assert (out / "evaluate" / smoothing / "checkpoints" / "subject01.pt").is_file()
    g = summary["numbers"]["gaussian"]
    assert f"Gaussian {g['weighted_f1']:.2f} %" in stdout
    with open(out / "evaluate" / "results.csv") as fid:
        rows = list(csv.DictReader(fid))
    assert {r["smoothing"] for r in rows} >= {"gaussian", "onehot"}
    html = (out / "evaluate" / "report.html").read_text()
    assert html.startswith("<!DOCTYPE html>") and "onehot" in html and "gaussian" in html


def test_prediction_has_one_row_per_window_and_probabilities(run):
    out, _ = run
    with open(out / "prediction" / "predictions.csv") as fid:
        rows = list(csv.DictReader(fid))
    # 4 s resampled to 128 Hz, 1-s windows every 1 s
    n_windows = int((SECONDS * 128 - 128) // 128) + 1
    assert len(rows) == n_windows
    assert [float(r["start_s"]) for r in rows] == list(np.arange(n_windows, dtype=float))
    proba = np.array([[float(r[f"p_rating{k}"]) for k in range(1, 6)] for r in rows])
    np.testing.assert_allclose(proba.sum(1), 1.0, atol=1e-5)
    assert [int(r["predicted_rating"]) for r in rows] == list(proba.argmax(1) + 1)
    pred = json.loads((out / "demo.json").read_text())["prediction"]
    assert pred["n_windows"] == n_windows and "'baseline' marker" in pred["baseline"]
    assert pred["counts"] == np.bincount(proba.argmax(1), minlength=5).tolist()


def test_report_summary_and_metadata(run):
    out, stdout = run
    for i in range(1, 7):
        assert f"[{i}/6]" in stdout
    for needle in (str(out / "report.html"), "Seq2HR", "QUICK RECIPE", "SYNTHETIC",
                   "1000 samples at 250 Hz", "baseline, stimulus 1, rest, stimulus 2, end"):
        assert needle in stdout, needle
    html = (out / "report.html").read_text()
    assert html.startswith("<!DOCTYPE html>") and html.count("data:image/png;base64,") == 3
    assert "evaluate/report.html" in html and "QUICK RECIPE" in html
    config = yaml.safe_load((out / "config.yaml").read_text())
    assert config == {"out": str(out), "seconds": 4.0, "subjects": 2, "epochs": 2,
                      "steps_per_epoch": 3, "threads": 1, "tiny": True, "seed": 0}
    meta = json.loads((out / "run.json").read_text())
    assert meta["seed"] == 0 and "torch" in meta["versions"]
    assert (out / demo.MARKER_FILE).is_file()
    # HiSTN beside the baselines: one verdict per smoothing, the same as the evaluation's
    # own tables say, printed and in the demo's report
    said = json.loads((out / "demo.json").read_text())["verdicts"]
    assert [v.split(":")[0] for v in said] == ["sd · valence · gaussian",
                                              "sd · valence · onehot"]
    md = (out / "evaluate" / "results.md").read_text()
    for v in said:
        assert v in md and v in stdout and v.split(" WARNING")[0] in html


def test_refuses_a_foreign_non_empty_out(tmp_path, capsys):
    (tmp_path / "thesis.tex").write_text("keep me")
    assert main(["demo", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "not written by `physioemo demo`" in err and "choose a new or empty --out" in err
    assert (tmp_path / "thesis.tex").read_text() == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["thesis.tex"]


def test_prepare_out_replaces_only_a_previous_demo(tmp_path):
    out = tmp_path / "d"
    assert demo.prepare_out(out) is False  # new folder
    (out / "recording").mkdir()
    (out / "recording" / "old.edf").write_bytes(b"x")
    (out / "demo.json").write_text("{}")
    assert demo.prepare_out(out) is True
    assert sorted(p.name for p in out.iterdir()) == [demo.MARKER_FILE]
    (tmp_path / "f").write_text("")
    with pytest.raises(DataError, match="is a file, where a folder is to be written"):
        demo.prepare_out(tmp_path / "f")
    with pytest.raises(DataError, match="not writable"):
        demo.prepare_out(Path("/proc/physioemo-demo"))


def _args(**kw):
    base = {k: None for k in demo.DEFAULTS}
    base.update(config=None)
    base.update(kw)
    return Namespace(**base)


def test_settings_tiny_and_precedence(monkeypatch):
    monkeypatch.delenv("PHYSIOEMO_SECONDS", raising=False)
    s = demo.resolve_settings(_args())
    assert (s["seconds"], s["epochs"], s["steps_per_epoch"]) == (30.0, 20, 20)
    s = demo.resolve_settings(_args(tiny=True, epochs=5))
    assert (s["seconds"], s["epochs"], s["steps_per_epoch"]) == (4.0, 5, 3)


@pytest.mark.parametrize("argv, fragment", [
    (["--seconds", "1"], "seconds=1.0 is out of range"),
    (["--subjects", "1"], "subjects=1 is out of range"),
    (["--epochs", "0"], "epochs=0 is out of range"),
])
def test_bad_settings_are_one_line_errors(tmp_path, capsys, argv, fragment):
    assert main(["demo", "--out", str(tmp_path / "o"), *argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and fragment in err[0] and "Traceback" not in err[0]
    assert not (tmp_path / "o").exists()
