import contextlib
import json

import numpy as np
import optuna
import pytest
from optuna.trial import TrialState

from physioemo.exceptions import DataError
from physioemo.tuning.objective import METRICS, ProtocolObjective, n_folds, searchable_params
from physioemo.tuning.search_space import parse_search_space
from physioemo.tuning.study import RetryCallback, run_worker

SPACE = parse_search_space({"sigma": {"type": "float", "low": 0.1, "high": 2.0},
                            "epochs": 1})


class TableRunner:
    """Returns validation metric = table[subject, fold] * sigma and logs every call."""

    def __init__(self, table):
        self.table = np.asarray(table, dtype=float)
        self.calls = []

    def n_folds(self):
        return self.table.shape[1]

    def __call__(self, config, subject, fold, out_dir=None):
        self.calls.append((config["sigma"], subject, fold))
        value = self.table[subject, fold] * config["sigma"]
        return {"val_metrics": {"weighted_f1": value, "seq2hr": 100 - value, "n_windows": 10}}


def val_score(sigma, subject, fold):
    """Validation weighted_f1 of LeakRunner: best at sigma = 0.5, values in [0, 60]."""
    return 50.0 - 40.0 * (sigma - 0.5) ** 2 + 3 * subject + 2 * fold


def score_on_test(sigma, subject, fold):
    """Test weighted_f1 of LeakRunner: best at sigma = 1.9, values in [100, 200]."""
    return 180.0 - 20.0 * (sigma - 1.9) ** 2 + 5 * subject - fold


class LeakRunner:
    """Records with different validation and test metrics (other optimum, other range)."""

    def __init__(self, n_folds=2):
        self._n_folds = n_folds

    def n_folds(self):
        return self._n_folds

    def __call__(self, config, subject, fold, out_dir=None):
        val, test = (f(config["sigma"], subject, fold) for f in (val_score, score_on_test))
        return {"val_metrics": {"weighted_f1": val, "seq2hr": 100 - val},
                "metrics": {"weighted_f1": test, "seq2hr": 300 - test}}


def test_value_intermediates_and_fold_attributes():
    runner = TableRunner([[10, 20, 30], [40, 50, 60]])
    objective = ProtocolObjective(SPACE, runner, subjects=[0, 1], metric="weighted_f1")
    study = optuna.create_study(direction=objective.direction)
    study.enqueue_trial({"sigma": 1.0})
    study.optimize(objective, n_trials=1)
    trial = study.trials[0]
    # mean over subjects of the per-subject means: (20 + 50) / 2
    assert trial.value == pytest.approx(35.0)
    # fold-major order: (s0,f0) (s1,f0) (s0,f1) (s1,f1) (s0,f2) (s1,f2)
    assert [c[1:] for c in runner.calls] == [(0, 0), (1, 0), (0, 1), (1, 1), (0, 2), (1, 2)]
    running = np.cumsum([10, 40, 20, 50, 30, 60]) / np.arange(1, 7)
    assert [trial.intermediate_values[k] for k in range(6)] == pytest.approx(running)
    assert trial.user_attrs["val_s02_f1"] == {"weighted_f1": 50.0, "seq2hr": 50.0,
                                              "n_windows": 10.0}
    assert not [k for k in trial.user_attrs if k.startswith("test_")]  # the runner gave none


def test_metric_selects_the_column_and_direction():
    runner = TableRunner([[10, 30]])
    objective = ProtocolObjective(SPACE, runner, subjects=[0], folds=[1], metric="seq2hr")
    assert objective.direction == "maximize" and set(METRICS.values()) == {"maximize"}
    study = optuna.create_study(direction=objective.direction)
    study.enqueue_trial({"sigma": 2.0})
    study.optimize(objective, n_trials=1)
    assert study.trials[0].value == pytest.approx(100 - 60.0)
    assert [c[2] for c in runner.calls] == [1]  # only the requested fold ran


def test_median_pruner_stops_a_bad_trial_after_its_first_fold():
    runner = TableRunner([[50, 50, 50, 50]])
    objective = ProtocolObjective(SPACE, runner, subjects=[0])
    study = optuna.create_study(direction="maximize",
                                pruner=optuna.pruners.MedianPruner(n_startup_trials=2))
    for sigma in (1.0, 1.2, 0.1):  # two good trials, then a bad one
        study.enqueue_trial({"sigma": sigma})
    run_worker(study, objective, n_trials=3, lock=contextlib.nullcontext(),
               retry=RetryCallback())
    states = [t.state for t in study.trials]
    assert states == [TrialState.COMPLETE, TrialState.COMPLETE, TrialState.PRUNED]
    # the bad trial ran one fold out of four
    assert sum(1 for c in runner.calls if c[0] == 0.1) == 1
    assert study.trials[2].intermediate_values == {0: pytest.approx(5.0)}


def test_non_finite_metric_is_a_data_error():
    runner = TableRunner([[np.nan]])
    objective = ProtocolObjective(SPACE, runner, subjects=[0])
    study = optuna.create_study(direction="maximize")
    with pytest.raises(DataError, match=r"subject 1, fold 0 gave validation weighted_f1=nan"):
        study.optimize(objective, n_trials=1)


def test_searchable_params_and_folds_follow_run_protocol():
    from physioemo.cli.evaluate import DEFAULTS

    names = searchable_params(DEFAULTS)
    assert {"sigma", "graph", "smoothing", "epochs", "lr", "dropout", "batch_size"} <= set(names)
    assert not {"data", "out_dir", "seed", "subjects", "folds", "overrides"} & set(names)
    assert (n_folds("sd"), n_folds("sd-strict"), n_folds("reston1")) == (10, 6, 1)


def test_protocol_runner_trains_with_the_sampled_hyperparameters(tmp_path, monkeypatch):
    from physioemo.models.histn import HiSTN
    from physioemo.training import trainer as trainer_mod
    from physioemo.tuning.objective import ProtocolRunner

    seen = []
    fit = trainer_mod.Trainer.fit

    def spy(self, train, val=None):
        seen.append((self.model, self.batch_size, self.lr))
        return fit(self, train, val)

    monkeypatch.setattr(trainer_mod.Trainer, "fit", spy)
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 5, size=(1, 18, 3))
    data = rng.standard_normal((1, 18, 14, 7680)).astype(np.float32)
    space = parse_search_space({"lr": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True},
                                "dropout": {"type": "float", "low": 0.0, "high": 0.6},
                                "batch_size": {"type": "categorical", "choices": [16, 32]},
                                "epochs": 2, "steps_per_epoch": 1})
    runner = ProtocolRunner("sd-strict", data, labels, n_threads=1)
    objective = ProtocolObjective(space, runner, subjects=[0], folds=[0],
                                  work_dir=tmp_path)
    study = optuna.create_study(direction="maximize")
    study.enqueue_trial({"lr": 4e-3, "dropout": 0.25, "batch_size": 32})
    study.optimize(objective, n_trials=1)
    ((model, batch_size, lr),) = seen
    assert isinstance(model, HiSTN) and model.dropout == 0.25
    # sd-strict's {0: 1e-3, 30: 5e-4} over 50 epochs, started at 4e-3 and stretched to 2
    assert batch_size == 32 and lr == pytest.approx({0: 4e-3, 1: 2e-3})
    settings = json.loads((tmp_path / "trial_0000" / "s01_f0" / "settings.json").read_text())
    assert (settings["lr"], settings["dropout"], settings["batch_size"]) == (4e-3, 0.25, 32)
    trial = study.trials[0]
    # the value is the record's validation metric (the fold's 3 validation clips)
    (record,) = [json.loads(x) for x in
                 (tmp_path / "trial_0000" / "s01_f0" / "results.jsonl").read_text().splitlines()]
    assert trial.value == record["val_metrics"]["weighted_f1"]
    assert trial.intermediate_values == {0: record["val_metrics"]["weighted_f1"]}
    assert trial.user_attrs["val_s01_f0"]["weighted_f1"] == trial.value
    assert trial.user_attrs["test_s01_f0"] == record["metrics"]
    assert record["val_metrics"]["n_windows"] == 60 * len(record["val_clips"]) == 180


def _spy_reports(monkeypatch):
    """Record every value passed to ``trial.report``."""
    reported = []
    report = optuna.trial.Trial.report

    def spy(self, value, step):
        reported.append((self.number, step, value))
        return report(self, value, step)

    monkeypatch.setattr(optuna.trial.Trial, "report", spy)
    return reported


def test_only_validation_metrics_reach_optuna(monkeypatch):
    reported = _spy_reports(monkeypatch)
    objective = ProtocolObjective(SPACE, LeakRunner(n_folds=2), subjects=[0, 1])
    study = optuna.create_study(direction="maximize")
    sigmas = (0.5, 1.9, 1.2, 0.2)  # 0.5 is the validation optimum, 1.9 the test optimum
    for sigma in sigmas:
        study.enqueue_trial({"sigma": sigma})
    study.optimize(objective, n_trials=len(sigmas))
    units = [(0, 0), (1, 0), (0, 1), (1, 1)]  # fold-major
    assert len(reported) == len(sigmas) * len(units)
    for trial in study.trials:
        sigma = trial.params["sigma"]
        val = [val_score(sigma, s, f) for s, f in units]
        test = [score_on_test(sigma, s, f) for s, f in units]
        running = np.cumsum(val) / np.arange(1, 5)
        mine = [v for n, _, v in reported if n == trial.number]
        assert mine == pytest.approx(running)
        assert [trial.intermediate_values[k] for k in range(4)] == pytest.approx(running)
        # mean over subjects of the per-subject mean of the validation metric
        assert trial.value == pytest.approx(np.mean(val))
        # the test metrics are recorded under test_ names only
        for (s, f), v, t in zip(units, val, test, strict=True):
            assert trial.user_attrs[f"val_s{s + 1:02d}_f{f}"]["weighted_f1"] == pytest.approx(v)
            assert trial.user_attrs[f"test_s{s + 1:02d}_f{f}"]["weighted_f1"] == pytest.approx(t)
    # no test-based number (all above 100) ever reached Optuna; validation ones are below 60
    assert max(v for _, _, v in reported) < 100 and max(t.value for t in study.trials) < 100
    assert study.best_trial.params["sigma"] == 0.5  # selected on validation, not 1.9


def test_a_record_without_val_metrics_is_refused(monkeypatch):
    class TestOnly:
        def n_folds(self):
            return 1

        def __call__(self, config, subject, fold, out_dir=None):
            return {"metrics": {"weighted_f1": 80.0}}

    reported = _spy_reports(monkeypatch)
    objective = ProtocolObjective(SPACE, TestOnly(), subjects=[0])
    study = optuna.create_study(direction="maximize")
    with pytest.raises(DataError, match=r"subject 1, fold 0 has no 'val_metrics'.*never falls "
                                        r"back to the test metrics"):
        study.optimize(objective, n_trials=1)
    assert reported == [] and study.trials[0].state == TrialState.FAIL


def test_protocol_runner_subject_independent_uses_the_held_out_tuning_subject(tmp_path):
    from physioemo.tuning.objective import VALIDATION, ProtocolRunner

    rng = np.random.default_rng(1)
    labels = rng.integers(0, 5, size=(2, 4, 3))
    data = rng.standard_normal((2, 4, 14, 7680)).astype(np.float32)
    space = parse_search_space({"sigma": {"type": "float", "low": 0.2, "high": 1.0},
                                "epochs": 1, "finetune_epochs": 1, "steps_per_epoch": 1})
    runner = ProtocolRunner("reston1", data, labels, n_threads=1, subject_numbers=[7, 9])
    objective = ProtocolObjective(space, runner, subjects=[0, 1], work_dir=tmp_path)
    assert objective.tuning_subjects() == [7, 9]
    assert "inner leave-one-subject-out" in objective.validation == VALIDATION["reston1"]
    study = optuna.create_study(direction="maximize")
    study.optimize(objective, n_trials=1)
    trial = study.trials[0]
    scores = []
    for num in (7, 9):
        (rec,) = [json.loads(x) for x in (tmp_path / "trial_0000" / f"s{num:02d}_f0" /
                                          "results.jsonl").read_text().splitlines()]
        assert rec["subject"] == num and rec["n_test"] == 4 * 50  # its last 50 s
        assert trial.user_attrs[f"val_s{num:02d}_f0"] == rec["metrics"]
        scores.append(rec["metrics"]["weighted_f1"])
    assert trial.value == pytest.approx(np.mean(scores))
    assert not [k for k in trial.user_attrs if k.startswith("test_")]
