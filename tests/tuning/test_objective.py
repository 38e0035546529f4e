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
    """Returns metric = table[subject, fold] * sigma and logs every call."""

    def __init__(self, table):
        self.table = np.asarray(table, dtype=float)
        self.calls = []

    def n_folds(self):
        return self.table.shape[1]

    def __call__(self, config, subject, fold, out_dir=None):
        self.calls.append((config["sigma"], subject, fold))
        value = self.table[subject, fold] * config["sigma"]
        return {"metrics": {"weighted_f1": value, "seq2hr": 100 - value, "n_windows": 10}}


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
    assert trial.user_attrs["s02_f1"] == {"weighted_f1": 50.0, "seq2hr": 50.0,
                                          "n_windows": 10.0}


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
    with pytest.raises(DataError, match=r"subject 1, fold 0 gave weighted_f1=nan"):
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
    assert study.trials[0].user_attrs["s01_f0"]["weighted_f1"] == study.trials[0].value
