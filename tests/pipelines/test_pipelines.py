"""Run every recipe in pipelines/ with its tiny settings and check what it wrote.

The recipes are scripts, not modules of the package: each is loaded from its file and its
``main(argv)`` is called in this process (record_session and convert_recordings start
``physioemo acquire`` as a subprocess themselves, as a user would).
"""

import csv
import importlib.util
import json
from pathlib import Path

import mne
import numpy as np
import pytest
import scipy.signal
import yaml
from sklearn.metrics import f1_score

from physioemo.acquisition import load_profile
from physioemo.dsp import FREQ_BANDS, filter_data

PIPELINES = Path(__file__).resolve().parents[2] / "pipelines"
HALF_STEP_UV = 4000.0 / 65535 / 2  # 16-bit EDF over the synthetic board's +-2000 uV


def load(name):
    spec = importlib.util.spec_from_file_location(f"pipeline_{name}", PIPELINES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(autouse=True)
def _isolated(monkeypatch, tmp_path):
    monkeypatch.delenv("PHYSIOEMO_DREAMER_PATH", raising=False)
    monkeypatch.delenv("PHYSIOEMO_STORAGE", raising=False)
    monkeypatch.setenv("PHYSIOEMO_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("MPLBACKEND", "Agg")


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    """A tiny recorded session: the EDF+ path (record_session --tiny)."""
    out = tmp_path_factory.mktemp("session") / "tiny.edf"
    assert load("record_session").main(["--tiny", "--out", str(out)]) == 0
    return out


def _table(path, delimiter=","):
    return list(csv.DictReader(Path(path).read_text().splitlines(), delimiter=delimiter))


def _read(path, **kw):
    return mne.io.read_raw_edf(path, preload=True, verbose="error", **kw)


def test_record_session_markers_and_summary(session):
    raw = _read(session)
    assert raw.ch_names == list(load_profile("synthetic").ch_names)
    assert raw.info["sfreq"] == 250.0
    # the scripted sequence, rebuilt independently: baseline, a seeded order of a/b, end
    order = np.random.default_rng(0).permutation(["a", "b"])
    expected = ["baseline"] + [x for c in order for x in (f"stim/{c}", "rest")] + ["end"]
    offsets = [0.0, 2.0, 3.5, 5.0, 6.5, 8.0]  # baseline 2 s, stimulus 1.5 s, rest 1.5 s
    ours = [(a["onset"], a["description"]) for a in raw.annotations
            if a["description"] in expected]
    assert [d for _, d in ours] == expected
    onsets = np.array([o for o, _ in ours])
    assert onsets[0] > 0  # markers fall inside the recording, not clamped to its start
    np.testing.assert_allclose(onsets - onsets[0], offsets, atol=0.15)
    sched = _table(session.with_name("tiny_schedule.tsv"), "\t")
    assert [r["marker"] for r in sched] == expected

    rows = _table(session.with_name("tiny_summary.csv"))
    assert [r["label"] for r in rows] == expected[:-1]
    # oracle: scipy periodogram band power of the filtered segment, 1-s windows
    data, sfreq = raw.get_data(units="uV"), 250.0
    for row, (t0, _), (t1, _) in zip(rows, ours[:-1], ours[1:], strict=True):
        i0, i1 = int(round(t0 * sfreq)), int(round(t1 * sfreq))
        seg = filter_data(data[:, i0:i1], sfreq, 1.0, 45.0)
        n_win = seg.shape[1] // 250
        assert int(row["n_windows"]) == n_win
        win = seg[:, :n_win * 250].reshape(len(raw.ch_names), n_win, 250)
        f, pxx = scipy.signal.periodogram(win, sfreq, window="hann", detrend="constant")
        for band, (lo, hi) in FREQ_BANDS.items():
            power = pxx[..., (f >= lo) & (f < hi)].sum(-1) * (sfreq / 250)
            assert float(row[f"log10_{band}_uv2"]) == pytest.approx(
                np.log10(power).mean(), rel=1e-9)


def test_convert_recordings_edf_and_brainflow_csv(session, tmp_path):
    from brainflow.board_shim import BoardShim

    # a BrainFlow CSV of the synthetic board with known sinusoids (2 s)
    descr = BoardShim.get_board_descr(-1)
    n, sfreq = 500, 250.0
    t = np.arange(n) / sfreq
    rows = np.zeros((descr["num_rows"], n))
    truth = np.array([50 * np.sin(2 * np.pi * (5 + k) * t)
                      for k in range(len(descr["eeg_channels"]))])
    rows[descr["eeg_channels"]] = truth
    rows[descr["timestamp_channel"]] = 1.7e9 + t
    bf = tmp_path / "bf.csv"
    np.savetxt(bf, rows.T, delimiter="\t", fmt="%.17g")

    root = tmp_path / "bids"
    assert load("convert_recordings").main([str(session), str(bf), "--device", "synthetic",
                                            "--bids-root", str(root), "--subject", "07",
                                            "--session", "1", "--task", "film"]) == 0
    eeg = root / "sub-07" / "ses-1" / "eeg"
    stem = "sub-07_ses-1_task-film_run-01"
    conv = _read(eeg / f"{stem}_eeg.edf", infer_types=True)
    orig = _read(session)
    assert conv.ch_names == orig.ch_names  # already MNE spelling; "EEG " prefix stripped
    assert set(conv.get_channel_types()) == {"eeg"}
    assert conv.info["meas_date"] == orig.info["meas_date"]
    np.testing.assert_allclose(conv.get_data(units="uV"), orig.get_data(units="uV"),
                               atol=HALF_STEP_UV * 2.01)
    conv.set_montage("standard_1020" if "standard_1020" in mne.channels.get_builtin_montages()
                     else "colin27_1020")  # every channel has a 10-20 position
    keep = [(a["onset"], a["description"]) for a in orig.annotations
            if a["description"] != "physioemo: padding"]
    got = [(a["onset"], a["description"]) for a in conv.annotations]
    # EDF+ spreads annotations over several annotation signals, so readers do not keep
    # the order of annotations that share an onset (quality events often do): compare
    # each description's onsets, and that the converted onsets are in time order.
    assert sorted(d for _, d in got) == sorted(d for _, d in keep)
    for desc in {d for _, d in keep}:
        np.testing.assert_allclose([o for o, d in got if d == desc],
                                   [o for o, d in keep if d == desc], atol=1e-3)
    assert np.all(np.diff([o for o, _ in got]) >= 0)
    events = _table(eeg / f"{stem}_events.tsv", "\t")
    assert [e["trial_type"] for e in events] == [d for _, d in keep]
    assert [int(e["sample"]) for e in events] == [round(o * 250) for o, _ in keep]
    chans = _table(eeg / f"{stem}_channels.tsv", "\t")
    assert [c["name"] for c in chans] == orig.ch_names
    assert {c["units"] for c in chans} == {"uV"} and {c["type"] for c in chans} == {"EEG"}
    side = json.loads((eeg / f"{stem}_eeg.json").read_text())
    assert side["SamplingFrequency"] == 250.0 and side["PowerLineFrequency"] == 50.0
    assert side["TaskName"] == "film" and side["EEGChannelCount"] == 16
    assert side["RecordingDuration"] == pytest.approx(orig.n_times / 250.0)

    csv_raw = _read(eeg / "sub-07_ses-1_task-film_run-02_eeg.edf", infer_types=True)
    assert csv_raw.ch_names == list(load_profile("synthetic").ch_names)
    np.testing.assert_allclose(csv_raw.get_data(units="uV"), truth, atol=HALF_STEP_UV * 1.01)
    desc = json.loads((root / "dataset_description.json").read_text())
    assert desc["BIDSVersion"] and desc["DatasetType"] == "raw"
    assert (root / "participants.tsv").read_text() == "participant_id\nsub-07\n"


def _weighted_f1(confusion):
    cm = np.asarray(confusion)
    y_true = np.repeat(np.arange(5), cm.sum(1))
    y_pred = np.concatenate([np.repeat(np.arange(5), row) for row in cm])
    return 100 * f1_score(y_true, y_pred, average="weighted", labels=np.unique(y_true))


def test_reproduce_paper_tiny(tmp_path):
    out = tmp_path / "paper"
    assert load("reproduce_paper").main(["--tiny", "--out", str(out)]) == 0
    table = (out / "paper_comparison.md").read_text().splitlines()
    paper = {("sd", "valence"): "96.82", ("sd", "arousal"): "95.62",
             ("reston1", "valence"): "78.34", ("reston1", "arousal"): "81.59"}
    for (protocol, dimension), number in paper.items():
        recs = [json.loads(x) for x in
                (out / f"{protocol}-{dimension}" / "results.jsonl").read_text().splitlines()]
        assert {r["subject"] for r in recs} == {1}
        assert len(recs) == (10 if protocol == "sd" else 1)
        ours = np.mean([_weighted_f1(r["confusion"]) for r in recs])  # sklearn oracle
        line = next(x for x in table if x.startswith(f"| {protocol} | {dimension} |"))
        cells = [c.strip() for c in line.strip("|").split("|")]
        assert cells[2] == "1"
        assert float(cells[3].split("±")[0]) == pytest.approx(ours, abs=0.006)
        assert cells[4] == number
        assert float(cells[5]) == pytest.approx(ours - float(number), abs=0.011)
    html = (out / "report.html").read_text()
    assert "96.82" in html and "81.59" in html and "data:image/png;base64," in html
    rows = _table(out / "results.csv")
    assert {(r["protocol"], r["dimension"]) for r in rows} == set(paper)


def test_tune_then_evaluate_tiny(tmp_path):
    import optuna

    out = tmp_path / "tuned"
    assert load("tune_then_evaluate").main(["--tiny", "--out", str(out)]) == 0
    best = yaml.safe_load((out / "tune" / "best_config.yaml").read_text())
    study = optuna.load_study(study_name="sd-valence-weighted_f1",
                              storage=f"sqlite:///{out / 'tune' / 'study.db'}")
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(done) == 2
    top = max(done, key=lambda t: t.value)
    assert best["sigma"] == top.params["sigma"] and best["smoothing"] == top.params["smoothing"]
    assert best["protocol"] == "sd" and best["epochs"] == 1
    used = yaml.safe_load((out / "evaluate" / "config.yaml").read_text())
    assert used["sigma"] == best["sigma"] and used["smoothing"] == best["smoothing"]
    recs = [json.loads(x) for x in
            (out / "evaluate" / "results.jsonl").read_text().splitlines()]
    assert sorted(r["fold"] for r in recs) == list(range(10))  # every fold, not just fold 0
    assert {r["sigma"] for r in recs} == {best["sigma"]}
    assert {r["smoothing"] for r in recs} == {best["smoothing"]}
    # tuned on subject 1 (its fold 0's validation block), evaluated on subject 2 only
    assert {k for t in done for k in t.user_attrs} == {"val_s01_f0", "test_s01_f0"}
    assert all(t.value == t.user_attrs["val_s01_f0"]["weighted_f1"] for t in done)
    assert {r["subject"] for r in recs} == {2} and best["subjects"] == [2]


def test_tune_then_evaluate_refuses_overlapping_subjects(tmp_path):
    out = tmp_path / "tuned"
    with pytest.raises(SystemExit, match=r"--eval-subjects \[1, 2\] overlap the tuning "
                                         r"subjects \[1\] in \[1\]"):
        load("tune_then_evaluate").main(["--tiny", "--eval-subjects", "1", "2", "--out",
                                         str(out)])
    assert not (out / "tune").exists()  # refused before any trial
    with pytest.raises(SystemExit, match=r"tuning on subjects \[1, 2\] leaves none"):
        load("tune_then_evaluate").main(["--tiny", "--subjects", "1", "2", "--out", str(out)])
