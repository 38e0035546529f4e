import csv
import functools
import json
from pathlib import Path

import optuna
import pytest
import yaml
from optuna.trial import TrialState

from physioemo.cli import main as cli_main

HERE = Path(__file__).resolve().parent
FAKE = f"{HERE.parent / 'tuning' / 'fake_runner.py'}:FakeRunner"


@pytest.fixture
def space_file(tmp_path):
    path = tmp_path / "space.yaml"
    path.write_text("sigma: {type: float, low: 0.1, high: 1.5}\n"
                    "graph: {type: categorical, choices: [G0, G1, G2]}\n"
                    "epochs: 1\n")
    return path


def _tune(space, out, *extra):
    return cli_main.main(["tune", "--runner", FAKE, "--search-space", str(space), "--out",
                          str(out), "-q", *map(str, extra)])


def _study(out, name="sd-strict-valence-weighted_f1"):
    return optuna.load_study(study_name=name, storage=f"sqlite:///{out / 'study.db'}")


def test_outputs_of_a_small_search(tmp_path, space_file):
    out = tmp_path / "out"
    assert _tune(space_file, out, "--n-trials", 6, "--pruner", "none", "--protocol", "sd",
                 "--dimension", "arousal", "--seed", 3) == 0
    study = _study(out, "sd-arousal-weighted_f1")
    trials = study.trials
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 6
    best = max(trials, key=lambda t: t.value)
    # oracle: the fake runner's score (2 folds, fold f costs f points)
    sigma, graph = best.params["sigma"], best.params["graph"]
    bonus = {"G0": 0.0, "G1": 10.0, "G2": 5.0}[graph]
    assert best.value == pytest.approx(60 - 40 * (sigma - 0.7) ** 2 + bonus - 0.5)
    config = yaml.safe_load((out / "best_config.yaml").read_text())
    assert config == {"protocol": "sd", "dimension": "arousal", "seed": 3, "device": "cpu",
                      "epochs": 1, "sigma": sigma, "graph": graph}
    rows = list(csv.DictReader((out / "trials.csv").open()))
    assert [int(r["number"]) for r in rows] == list(range(6))
    assert [float(r["value"]) for r in rows] == [t.value for t in trials]
    assert {r["n_folds"] for r in rows} == {"2"}
    assert [float(r["param_sigma"]) for r in rows] == [t.params["sigma"] for t in trials]
    info = json.loads((out / "study.json").read_text())
    assert info["study_name"] == "sd-arousal-weighted_f1"
    assert info["storage"] == f"sqlite:///{out / 'study.db'}"
    assert info["best_trial"]["number"] == best.number
    assert info["trials_by_state"] == {"COMPLETE": 6}
    for stem in ("optimization_history", "param_importances", "parallel_coordinate",
                 "slice", "intermediate_values"):
        found = list((out / "plots").glob(stem + ".*"))
        assert found and found[0].stat().st_size > 1000, stem


def test_rerun_resumes_up_to_the_study_total(tmp_path, space_file):
    out = tmp_path / "out"
    assert _tune(space_file, out, "--n-trials", 2, "--no-plots") == 0
    assert _tune(space_file, out, "--n-trials", 5, "--no-plots") == 0
    assert _tune(space_file, out, "--n-trials", 5, "--no-plots") == 0  # nothing left to do
    trials = _study(out).trials
    assert [t.number for t in trials] == list(range(5))
    assert all(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials)


def test_jobs_runs_worker_processes_on_a_journal(tmp_path, space_file):
    out = tmp_path / "out"
    assert _tune(space_file, out, "--n-trials", 6, "--jobs", 2, "--no-plots") == 0
    info = json.loads((out / "study.json").read_text())
    assert info["storage_kind"] == "journal" and info["n_lineages"] == 6
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    study = optuna.load_study(study_name=info["study_name"], storage=JournalStorage(
        JournalFileBackend(str(out / "study.journal"))))
    assert [t.number for t in study.trials] == list(range(6))
    assert all(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in study.trials)


@pytest.mark.parametrize("space_text, extra, code, match", [
    ("lr: {type: float, low: 0.0001, high: 0.01}\n", (), 2,
     r"unknown parameter\(s\) \['lr'\]; parameters must be keyword arguments"),
    ("sigma: {type: float, low: 2.0, high: 0.5}\n", (), 2,
     r"empty range: low=2.0 must be below high=0.5"),
    ("sigma: {type: float, low: 0.1, high: 1.5}\n",
     ("--storage", "postgresql://lab:topsecret@127.0.0.1:1/optuna"), 1,
     r"cannot open the study storage postgresql\+psycopg2://lab:\*\*\*@127\.0\.0\.1:1/optuna"),
    ("sigma: {type: float, low: 0.1, high: 1.5}\n",
     ("--storage", "sqlite:///x.db", "--jobs", "2"), 2,
     r"SQLite, which cannot serve --jobs 2 processes safely"),
    ("sigma: {type: float, low: 0.1, high: 1.5}\n", ("--grace-period", "5",
                                                      "--heartbeat-interval", "10"), 2,
     r"--grace-period 5 must exceed --heartbeat-interval 10"),
])
def test_bad_input_is_one_clear_line(tmp_path, capsys, space_text, extra, code, match):
    import re

    space = tmp_path / "space.yaml"
    space.write_text(space_text)
    assert _tune(space, tmp_path / "out", "--n-trials", 1, *extra) == code
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and re.search(match, err[0]), err
    assert "topsecret" not in err[0]


def test_bad_input_for_the_real_runner(tmp_path, capsys):
    space = tmp_path / "space.yaml"
    space.write_text("n_filters: {type: int, low: 8, high: 32}\n")
    code = cli_main.main(["tune", "--search-space", str(space), "--out", str(tmp_path / "o"),
                          "--dreamer", str(tmp_path / "none.mat")])
    err = capsys.readouterr().err
    assert code == 2
    assert "run_protocol that `physioemo evaluate --config` also accepts" in err
    assert "['n_filters']" in err
    assert "'sigma'" in err and "'graph'" in err and "'lr'" in err and "'batch_size'" in err


@pytest.fixture(scope="module")
def tiny_dreamer(tmp_path_factory):
    from physioemo.datasets import make_synthetic_dreamer

    path = tmp_path_factory.mktemp("dreamer") / "tiny.mat"
    make_synthetic_dreamer(path, n_subjects=2, n_clips=18, stimulus_seconds=60, seed=0)
    return path


def test_tiny_real_search_round_trips_into_evaluate(tmp_path, tiny_dreamer):
    from physioemo.cli.evaluate import DEFAULTS
    from physioemo.utils.config import load_config

    space = tmp_path / "space.yaml"
    space.write_text("sigma: {type: float, low: 0.25, high: 2.0, log: true}\n"
                     "graph: {type: categorical, choices: [G0, G1]}\n"
                     "lr: {type: float, low: 1.0e-4, high: 1.0e-2, log: true}\n"
                     "dropout: {type: float, low: 0.0, high: 0.6}\n"
                     "batch_size: {type: categorical, choices: [16, 32]}\n")
    out, cache = tmp_path / "tune", tmp_path / "cache"
    assert cli_main.main(["tune", "--dreamer", str(tiny_dreamer), "--cache-dir", str(cache),
                          "--protocol", "sd-strict", "--subjects", "1", "--folds", "0",
                          "--epochs", "1", "--steps-per-epoch", "2", "--n-trials", "2",
                          "--search-space", str(space), "--out", str(out), "--no-plots",
                          "-q"]) == 0
    study = _study(out)
    best = study.best_trial
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 2
    fold = best.user_attrs["val_s01_f0"]
    assert best.value == fold["weighted_f1"] and 0 <= best.value <= 100
    assert set(best.user_attrs["test_s01_f0"]) == set(fold)  # recorded beside it
    # evaluate's own validator accepts the file unchanged
    config = load_config(out / "best_config.yaml", allowed=DEFAULTS)
    assert config["sigma"] == best.params["sigma"] and config["graph"] == best.params["graph"]
    # it evaluates the subject of the file that was not tuned on
    assert config["subjects"] == [2] and config["epochs"] == 1
    text = (out / "best_config.yaml").read_text()
    assert "# Objective: validation weighted_f1 on the 3 validation clips of each fold" in text
    assert "# Tuned on subjects [1];" in text
    info = json.loads((out / "study.json").read_text())
    assert info["tuning_subjects"] == [1] and "validation clips" in info["objective_data"]
    for key in ("lr", "dropout", "batch_size"):
        assert config[key] == best.params[key], key
    if "evaluate" not in cli_main.COMMANDS:
        pytest.skip("`physioemo evaluate` is not registered yet; the best config was checked "
                    "against its option names only")
    ev = tmp_path / "eval"
    # the held-out subject 2, and subject 1 to check the tuned fold is reproduced
    assert cli_main.main(["evaluate", "--config", str(out / "best_config.yaml"), "--out",
                          str(ev), "--subjects", "1", "2", "-q"]) == 0
    records = [json.loads(line) for line in (ev / "results.jsonl").read_text().splitlines()]
    assert {r["subject"] for r in records} == {1, 2}
    fold0 = [r for r in records if r["subject"] == 1 and r["fold"] == 0]
    # Same seeds, same code: evaluate reproduces the tuned fold's validation score exactly.
    assert fold0[0]["val_metrics"]["weighted_f1"] == best.value
    assert fold0[0]["metrics"] == best.user_attrs["test_s01_f0"]
    assert fold0[0]["sigma"] == best.params["sigma"] and fold0[0]["graph"] == best.params[
        "graph"]
    # ... and trained with the tuned hyper-parameters (epochs=1: one constant rate)
    assert fold0[0]["hyperparams"] == {"dropout": best.params["dropout"],
                                       "batch_size": best.params["batch_size"],
                                       "lr": {"0": best.params["lr"], "1": pytest.approx(
                                           best.params["lr"] / 2)}}
    assert fold0[0]["curve"]["lr"] == [best.params["lr"]]


def test_timeout_stops_new_trials_and_env_storage_is_used(tmp_path, space_file, monkeypatch):
    journal = tmp_path / "env.journal"
    monkeypatch.setenv("PHYSIOEMO_STORAGE", str(journal))
    monkeypatch.setenv("FAKE_SLEEP", "0.3")  # 2 folds: ~0.6 s per trial
    out = tmp_path / "out"
    assert _tune(space_file, out, "--n-trials", 50, "--timeout", 1, "--no-plots") == 0
    info = json.loads((out / "study.json").read_text())
    assert info["storage"] == str(journal) and info["storage_kind"] == "journal"
    n = sum(info["trials_by_state"].values())
    assert 1 <= n <= 3 and set(info["trials_by_state"]) <= {"COMPLETE", "PRUNED"}


def test_grid_sampler_covers_the_grid_once(tmp_path):
    space = tmp_path / "grid.yaml"
    space.write_text("sigma: {type: float, low: 0.5, high: 1.0, step: 0.25}\n"
                     "graph: {type: categorical, choices: [G0, G1]}\n")
    out = tmp_path / "out"
    assert _tune(space, out, "--n-trials", 20, "--sampler", "grid", "--pruner", "none",
                 "--no-plots") == 0
    trials = _study(out).trials
    assert sorted((t.params["sigma"], t.params["graph"]) for t in trials) == [
        (s, g) for s in (0.5, 0.75, 1.0) for g in ("G0", "G1")]


@pytest.mark.parametrize("how, says", [
    ("error", "physioemo-tune-0: RuntimeError: the fake runner failed in a worker"),
    ("kill", "physioemo-tune-1 was killed by SIGKILL (out of memory, or killed by hand?)"),
])
def test_a_failed_worker_is_named_with_its_error(tmp_path, space_file, monkeypatch, capsys,
                                                 how, says):
    monkeypatch.setenv("FAKE_FAIL_IN_WORKER", how)
    out = tmp_path / "out"
    assert _tune(space_file, out, "--n-trials", 2, "--jobs", 2, "--no-plots") == 2
    (line,) = [ln for ln in capsys.readouterr().err.splitlines()
               if ln.startswith("physioemo tune: error: ")]
    assert line.startswith("physioemo tune: error: 2 of 2 worker process(es) stopped: ")
    assert says in line
    assert not list(out.glob(".worker-*.error"))


@pytest.mark.parametrize("space_text, match", [
    ("dropout: {type: float, low: 0.1, high: 1.5}\n", r"parameter 'dropout' can take a value "
     r"that no trial accepts \(dropout=1.5 is out of range: it must be >= 0.0 and < 1.0"),
    ("epochs: 0\nsigma: {type: float, low: 0.1, high: 1.5}\n", r"epochs=0 is out of range"),
    ("epochs: {type: int, low: 0, high: 3}\n", r"'epochs' can take a value .*epochs=0"),
    ("epochs: {type: float, low: 1, high: 3}\n", r"epochs must be an integer"),
    ("smoothing: {type: categorical, choices: [gaussian, cosine]}\n",
     r"smoothing='cosine' is not a valid option"),
])
def test_search_space_outside_valid_values_is_refused_before_any_trial(
        tmp_path, capsys, space_text, match):
    import re

    space = tmp_path / "space.yaml"
    space.write_text(space_text)
    out = tmp_path / "o"
    code = cli_main.main(["tune", "--search-space", str(space), "--out", str(out),
                          "--dreamer", str(tmp_path / "none.mat"), "--n-trials", "1", "-q"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and re.search(match, err[0]), err
    assert not (out / "study.db").exists() and not (out / "trials").exists()


def test_unescaped_at_in_a_postgres_password_is_refused_before_connecting(
        tmp_path, space_file, capsys, monkeypatch):
    import physioemo.tuning.study as st

    def boom(*a, **k):  # pragma: no cover - must not be reached
        raise AssertionError("connected with a malformed URL")

    monkeypatch.setattr(st, "open_storage", boom)
    assert _tune(space_file, tmp_path / "o", "--storage",
                 "postgresql://lab:pa@ss@db.lab:5432/optuna") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unescaped '@' in its user name or password" in err[0]
    assert "%40" in err[0] and "pa@ss" not in err[0] and "ss@db" not in err[0]
    assert "postgresql://lab:***@db.lab:5432/optuna" in err[0]


def test_help_says_which_data_the_objective_uses(capsys):
    assert cli_main.main(["tune", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "Which data the objective uses: never a test split" in text
    assert "never reported to Optuna" in text and "inner leave-one-subject-out" in text


@pytest.fixture(scope="module")
def three_subjects(tmp_path_factory):
    from physioemo.datasets import make_synthetic_dreamer

    path = tmp_path_factory.mktemp("dreamer3") / "three.mat"
    make_synthetic_dreamer(path, n_subjects=3, n_clips=4, stimulus_seconds=60, seed=1)
    return path


@pytest.mark.parametrize("protocol", ["reston1", "1on1", "no-pretrain"])
def test_subject_independent_tuning_never_sees_the_evaluation_subjects(
        tmp_path, three_subjects, monkeypatch, protocol):
    import numpy as np

    from physioemo.datasets.cache import load_subjects
    from physioemo.evaluation import protocols

    cache = tmp_path / "cache"
    every, _, _, _ = load_subjects(three_subjects, cache_dir=cache)  # oracle: all 3 subjects
    calls = []

    @functools.wraps(protocols.run_protocol)  # same signature: the searchable parameters
    def spy(name, data, labels, *, subjects, subject_numbers, **kwargs):
        calls.append((name, np.array(data), list(subjects), list(subject_numbers)))
        num = int(subject_numbers[subjects[0]])
        value = 10.0 * num + kwargs["sigma"]  # this unit's held-out tuning subject's score
        return [{"subject": num, "fold": 0, "metrics": {"weighted_f1": value}}]

    monkeypatch.setattr(protocols, "run_protocol", spy)
    space = tmp_path / "space.yaml"
    space.write_text("sigma: {type: float, low: 0.25, high: 2.0}\nepochs: 1\n")
    out = tmp_path / "tune"
    assert cli_main.main(["tune", "--dreamer", str(three_subjects), "--cache-dir", str(cache),
                          "--protocol", protocol, "--subjects", "1", "3", "--n-trials", "2",
                          "--pruner", "none", "--search-space", str(space), "--out", str(out),
                          "--no-plots", "-q"]) == 0
    assert len(calls) == 4  # 2 trials x 2 held-out tuning subjects
    for name, data, _subjects, numbers in calls:
        # the runner's arrays hold the tuning subjects 1 and 3 only: subject 2, evaluated
        # later, is neither held out nor in the pretraining pool
        assert name == protocol and numbers == [1, 3] and data.shape[0] == 2
        np.testing.assert_array_equal(data, every[[0, 2]])
        assert not any(np.array_equal(d, every[1]) for d in data)
    assert sorted(numbers[s[0]] for _, _, s, numbers in calls) == [1, 1, 3, 3]
    study = _study(out, f"{protocol}-valence-weighted_f1")
    for t in study.trials:
        expected = [10.0 + t.params["sigma"], 30.0 + t.params["sigma"]]
        assert t.value == pytest.approx(np.mean(expected))
        assert t.user_attrs["val_s03_f0"]["weighted_f1"] == pytest.approx(expected[1])
        assert not [k for k in t.user_attrs if k.startswith("test_")]
    config = yaml.safe_load((out / "best_config.yaml").read_text())
    assert config["subjects"] == [2]  # evaluate the subject that was not tuned on


def test_subject_independent_tuning_needs_two_subjects(tmp_path, three_subjects, capsys):
    code = cli_main.main(["tune", "--dreamer", str(three_subjects), "--protocol", "reston1",
                          "--subjects", "2", "--out", str(tmp_path / "o"), "-q"])
    assert code == 2
    assert "needs at least 2 --subjects, got [2]" in capsys.readouterr().err


def test_a_custom_runner_without_val_metrics_is_one_clear_error(tmp_path, space_file):
    runner = tmp_path / "old_runner.py"
    runner.write_text("class OldRunner:\n"
                      "    params = ['sigma', 'graph', 'epochs']\n"
                      "    def __init__(self, protocol, data, labels, **kwargs):\n"
                      "        pass\n"
                      "    def n_folds(self):\n"
                      "        return 1\n"
                      "    def __call__(self, config, subject, fold, out_dir=None):\n"
                      "        return {'metrics': {'weighted_f1': 99.0}}\n")
    out = tmp_path / "out"
    cli_main.main(["tune", "--runner", f"{runner}:OldRunner", "--search-space",
                   str(space_file), "--out", str(out), "--n-trials", "1", "--no-plots",
                   "--max-retry", "0", "-q"])
    trials = _study(out).trials
    assert [t.state for t in trials] == [TrialState.FAIL]
    assert trials[0].intermediate_values == {} and trials[0].value is None
    assert "has no 'val_metrics'" in trials[0].user_attrs["error"]
    assert not (out / "best_config.yaml").exists()
