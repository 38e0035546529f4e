import json

import numpy as np
import pytest
import yaml

from physioemo.cli.main import main


@pytest.fixture(autouse=True)
def _no_real_dreamer(monkeypatch, tmp_path):
    monkeypatch.delenv("PHYSIOEMO_DREAMER_PATH", raising=False)
    monkeypatch.setenv("PHYSIOEMO_CACHE_DIR", str(tmp_path / "cache"))


TINY = ["--synthetic-subjects", "2", "--synthetic-seconds", "62", "--threads", "1", "-q"]


def test_evaluate_end_to_end_and_config_round_trip(tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["evaluate", "--protocol", "no-pretrain", "--subjects", "1", "2",
                 "--epochs", "2", "--smoothing", "both", "--seed", "3", "--out", str(out),
                 *TINY])
    assert code == 0
    err = capsys.readouterr().err
    assert "WARNING: no --dreamer given" in err and "GENERATED" in err
    for name in ("config.yaml", "run.json", "results.csv", "results.md", "report.html",
                 "synthetic_dreamer.mat", "gaussian/results.jsonl", "onehot/results.jsonl"):
        assert (out / name).is_file(), name
    cfg = yaml.safe_load((out / "config.yaml").read_text())
    assert cfg["protocol"] == "no-pretrain" and cfg["subjects"] == [1, 2]
    assert cfg["seed"] == 3 and cfg["epochs"] == 2 and cfg["dreamer"] is None
    recs = [json.loads(x) for x in (out / "gaussian/results.jsonl").read_text().splitlines()]
    assert sorted(r["subject"] for r in recs) == [1, 2]
    html = (out / "report.html").read_text()
    assert "data:image/png;base64," in html and "not ours" in html
    assert "Gaussian vs one-hot" in html
    rows = (out / "results.csv").read_text().splitlines()
    assert rows[0].startswith("protocol,dimension,smoothing,subject")
    assert len(rows) == 1 + 2 * (2 + 2)  # 2 smoothings x (2 subjects + mean + std)
    # the written config reproduces the run (into another directory)
    out2 = tmp_path / "again"
    assert main(["evaluate", "--config", str(out / "config.yaml"), "--out", str(out2),
                 "-q"]) == 0
    recs2 = [json.loads(x) for x in (out2 / "gaussian/results.jsonl").read_text().splitlines()]
    key = lambda r: r["subject"]  # noqa: E731
    for a, b in zip(sorted(recs, key=key), sorted(recs2, key=key), strict=True):
        assert a["metrics"] == b["metrics"] and a["curve"] == b["curve"]


def test_evaluate_sd_writes_checkpoint_and_table(tmp_path, capsys):
    out = tmp_path / "sd"
    code = main(["evaluate", "--protocol", "sd", "--subjects", "2", "--epochs", "1",
                 "--steps-per-epoch", "1", "--out", str(out), *TINY])
    assert code == 0
    lines = (out / "results.jsonl").read_text().splitlines()
    assert sorted(json.loads(x)["fold"] for x in lines) == list(range(10))
    assert (out / "checkpoints" / "subject02.pt").is_file()
    md = (out / "results.md").read_text()
    assert "| 2 | 10 |" in md and "96.82" in md  # the paper's number, labelled as such
    f1 = [json.loads(x)["metrics"]["weighted_f1"] for x in lines]
    assert f"{np.mean(f1):.2f}" in md


@pytest.mark.parametrize("argv, match, code", [
    (["--protocol", "sd"], "no output directory given", 2),
    (["--protocol", "sd", "--subjects", "0", "--out", "X"], "subjects=0 is out of range", 2),
    (["--protocol", "sd", "--epochs", "0", "--out", "X"], "epochs=0 is out of range", 2),
    (["--dreamer", "missing.mat", "--out", "X"], "DREAMER file not found", 1),
])
def test_evaluate_bad_input_is_one_line(tmp_path, capsys, monkeypatch, argv, match, code):
    monkeypatch.chdir(tmp_path)
    assert main(["evaluate", *argv]) == code
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and match in err[0]


def test_evaluate_unknown_config_key(tmp_path, capsys):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("protocol: sd\nlearning_rate: 0.1\n")
    assert main(["evaluate", "--config", str(cfg), "--out", str(tmp_path / "o")]) == 2
    assert "unknown key(s) ['learning_rate']" in capsys.readouterr().err


def test_evaluate_hyperparameter_flags_and_config(tmp_path, capsys):
    out = tmp_path / "hp"
    argv = ["evaluate", "--protocol", "no-pretrain", "--subjects", "1", "--epochs", "1",
            "--lr", "2e-3", "--dropout", "0.3", "--batch-size", "300", "--out", str(out), *TINY]
    assert main(argv) == 0
    cfg = yaml.safe_load((out / "config.yaml").read_text())
    assert (cfg["lr"], cfg["dropout"], cfg["batch_size"]) == (2e-3, 0.3, 300)
    settings = json.loads((out / "settings.json").read_text())
    assert (settings["lr"], settings["dropout"], settings["batch_size"]) == (2e-3, 0.3, 300)
    (rec,) = [json.loads(x) for x in (out / "results.jsonl").read_text().splitlines()]
    assert rec["hyperparams"] == {"dropout": 0.3, "batch_size": 300, "lr": {"0": 2e-3}}
    assert rec["curve"]["lr"] == [2e-3]
    # config keys have the flags' names; `1e-3`-style numbers (YAML strings) are accepted
    text = (out / "config.yaml").read_text().replace("lr: 0.002", "lr: 2e-3")
    assert "lr: 2e-3" in text
    (tmp_path / "c.yaml").write_text(text)
    out2 = tmp_path / "again"
    assert main(["evaluate", "--config", str(tmp_path / "c.yaml"), "--out", str(out2),
                 "-q"]) == 0
    (rec2,) = [json.loads(x) for x in (out2 / "results.jsonl").read_text().splitlines()]
    assert rec2["metrics"] == rec["metrics"] and rec2["hyperparams"] == rec["hyperparams"]
    # the flag beats the config file; other values refuse to resume into the same --out
    capsys.readouterr()
    before = {p.name: p.read_bytes() for p in out2.iterdir() if p.is_file()}
    assert main(["evaluate", "--config", str(tmp_path / "c.yaml"), "--lr", "5e-3", "--out",
                 str(out2), "-q"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "other settings (lr: 0.002 -> 0.005)" in err[0]
    # refused before anything was written: config.yaml still describes the results
    assert {p.name: p.read_bytes() for p in out2.iterdir() if p.is_file()} == before


@pytest.mark.parametrize("argv, match", [
    (["--lr", "0"], "lr=0.0 is out of range: it must be > 0.0"),
    (["--dropout", "1.5"], "dropout=1.5 is out of range: it must be >= 0.0 and < 1.0"),
    (["--batch-size", "0"], "batch_size=0 is out of range: it must be >= 1"),
])
def test_evaluate_bad_hyperparameters(tmp_path, capsys, monkeypatch, argv, match):
    monkeypatch.chdir(tmp_path)
    assert main(["evaluate", "--protocol", "sd", *argv, "--out", "X"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and match in err[0]
    assert not (tmp_path / "X").exists()  # refused before any work


@pytest.fixture(scope="module")
def nan_in_subject2(tmp_path_factory):
    """A 2-subject DREAMER-format file with NaNs in subject 2's kept EEG (edited in place)."""
    from physioemo.datasets import load_dreamer, make_synthetic_dreamer

    path = make_synthetic_dreamer(tmp_path_factory.mktemp("nan") / "nan.mat", n_subjects=2,
                                  stimulus_seconds=62, seed=0)
    row = np.asarray(load_dreamer(path).subjects[1].eeg_stimulus[4][2], dtype="<f8")
    raw = bytearray(path.read_bytes())
    at = raw.find(row[-300:-200].tobytes())
    assert at > 0
    raw[at:at + 16] = np.array([np.nan, np.nan]).tobytes()
    path.write_bytes(bytes(raw))
    return path


QUICK = ["--protocol", "no-pretrain", "--epochs", "1", "--threads", "1", "-q"]


def test_a_nan_in_subject2_does_not_block_subject1(tmp_path, capsys, nan_in_subject2):
    out = tmp_path / "s1"
    assert main(["evaluate", "--dreamer", str(nan_in_subject2), "--subjects", "1",
                 "--out", str(out), *QUICK]) == 0
    recs = [json.loads(x) for x in (out / "results.jsonl").read_text().splitlines()]
    assert [r["subject"] for r in recs] == [1]
    capsys.readouterr()
    bad = tmp_path / "s2"
    assert main(["evaluate", "--dreamer", str(nan_in_subject2), "--subjects", "2",
                 "--out", str(bad), *QUICK]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "subject 2, clip 5 contains 2 NaN" in err[0]
    assert not bad.exists()  # a run folder is written only once its inputs are valid


def test_a_failed_run_does_not_poison_its_folder(tmp_path, capsys, nan_in_subject2):
    out = tmp_path / "run"
    assert main(["evaluate", "--dreamer", str(nan_in_subject2), "--out", str(out),
                 "--lr", "0.5", *QUICK]) == 1
    assert not (out / "config.yaml").exists() and not (out / "run.json").exists()
    # a run that failed during training left its settings but no result: other settings
    # may replace them
    out.mkdir()
    (out / "config.yaml").write_text("protocol: sd\nlr: 0.5\n")
    capsys.readouterr()
    assert main(["evaluate", "--dreamer", str(nan_in_subject2), "--subjects", "1",
                 "--out", str(out), *QUICK]) == 0
    cfg = yaml.safe_load((out / "config.yaml").read_text())
    assert cfg["protocol"] == "no-pretrain" and cfg["lr"] is None


def test_resume_with_more_subjects_keeps_the_first(tmp_path, capsys):
    out = tmp_path / "r"
    base = ["evaluate", "--out", str(out), *QUICK, "--synthetic-subjects", "2",
            "--synthetic-seconds", "62"]
    assert main([*base, "--subjects", "2"]) == 0
    first = (out / "results.jsonl").read_text().splitlines()
    assert main([*base, "--subjects", "1", "2"]) == 0
    lines = (out / "results.jsonl").read_text().splitlines()
    assert lines[:1] == first and sorted(json.loads(x)["subject"] for x in lines) == [1, 2]


def test_a_folder_as_dreamer_is_one_line(tmp_path, capsys):
    out = tmp_path / "o"
    assert main(["evaluate", "--dreamer", str(tmp_path), "--out", str(out)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is a directory" in err[0] and "Traceback" not in err[0]
    assert not out.exists()


@pytest.mark.parametrize("text, expect", [
    ("subjects: 1\n", [1]),
    ("subjects: [1, 3]\n", [1, 3]),
    ("subjects: abc\n", "subjects must be an integer"),
    ("subjects: {a: 1}\n", "subjects must be a list of subject numbers"),
])
def test_subjects_in_a_config_file(tmp_path, text, expect):
    import argparse

    from physioemo.cli import evaluate
    from physioemo.exceptions import ParameterError

    cfg = tmp_path / "c.yaml"
    cfg.write_text(text + "out: o\n")
    args = argparse.Namespace(config=str(cfg), **{k: None for k in evaluate.DEFAULTS})
    settings = evaluate.resolve_settings(args)
    if isinstance(expect, list):
        evaluate._check(settings)
        assert settings["subjects"] == expect
    else:
        with pytest.raises(ParameterError, match=expect):
            evaluate._check(settings)


def test_environment_cannot_set_out_or_subjects(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PHYSIOEMO_OUT", str(tmp_path / "x.edf"))
    monkeypatch.setenv("PHYSIOEMO_SUBJECTS", "1")
    assert main(["evaluate", "--protocol", "sd"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    errors = [line for line in err if " WARNING " not in line]
    assert errors == ["physioemo evaluate: error: no output directory given; pass --out DIR "
                      "(or 'out' in --config)."]
    assert sum("ignoring the environment variable PHYSIOEMO_" in line for line in err) == 2


def test_baselines_by_default_and_no_baselines_skips_them(tmp_path, capsys):
    quick = ["evaluate", "--protocol", "no-pretrain", "--subjects", "1", "--epochs", "1",
             *TINY]
    out = tmp_path / "with"
    assert main([*quick, "--out", str(out)]) == 0
    (rec,) = [json.loads(x) for x in (out / "results.jsonl").read_text().splitlines()]
    base = rec["baselines"]
    assert set(base) == {"majority", "stratified", "classic", "physio", "probe"}
    assert base["physio"]["available"]  # R peaks from the generated file's ECG
    assert base["probe"]["metrics"]["n_windows"] == rec["n_test"]
    assert yaml.safe_load((out / "config.yaml").read_text())["baselines"] is True
    md = (out / "results.md").read_text()
    assert "Probe F1" in md and "HiSTN minus the best baseline" in md
    assert "HiSTN minus the best baseline" in (out / "report.html").read_text()
    # a resumed run keeps its choice
    assert main([*quick, "--out", str(out), "--no-baselines"]) == 2
    assert "baselines: True -> False" in capsys.readouterr().err
    off = tmp_path / "without"
    assert main([*quick, "--out", str(off), "--no-baselines"]) == 0
    (rec,) = [json.loads(x) for x in (off / "results.jsonl").read_text().splitlines()]
    assert "baselines" not in rec
    assert "Probe F1" not in (off / "results.md").read_text()
    assert json.loads((off / "settings.json").read_text())["baselines"] is None


def test_evaluate_causal_normalization_reaches_config_records_and_checkpoints(tmp_path):
    import torch  # noqa: F401  (load_checkpoint)

    from physioemo.models import load_checkpoint

    out = tmp_path / "causal"
    assert main(["evaluate", "--protocol", "no-pretrain", "--subjects", "1", "--epochs", "1",
                 "--normalization", "causal", "--out", str(out), *TINY]) == 0
    assert yaml.safe_load((out / "config.yaml").read_text())["normalization"] == "causal"
    assert json.loads((out / "settings.json").read_text())["normalization"] == "causal"
    recs = [json.loads(x) for x in (out / "results.jsonl").read_text().splitlines()]
    assert [r["normalization"] for r in recs] == ["causal"]
    _, extra = load_checkpoint(out / "checkpoints" / "subject01.pt")
    assert extra["normalization"] == "causal"
    # the same folder cannot resume as paper (the data differ)
    assert main(["evaluate", "--protocol", "no-pretrain", "--subjects", "1", "--epochs", "1",
                 "--out", str(out), *TINY]) == 2
