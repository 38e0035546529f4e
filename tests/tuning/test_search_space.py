import math

import optuna
import pytest

from physioemo.exceptions import DataError, ParameterError
from physioemo.tuning.search_space import load_search_space, parse_search_space

SPEC = {
    "sigma": {"type": "float", "low": 0.25, "high": 2.0, "log": True},
    "steps_per_epoch": {"type": "int", "low": 8, "high": 32, "step": 8},
    "graph": {"type": "categorical", "choices": ["G0", "G1", "G2"]},
    "epochs": 5,
}


def test_parse_and_suggest_stay_inside_the_declared_space():
    space = parse_search_space(SPEC)
    assert [p.name for p in space.params] == ["sigma", "steps_per_epoch", "graph"]
    assert space.fixed == {"epochs": 5}
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    seen = []
    for _ in range(40):
        trial = study.ask()
        config = space.suggest(trial)
        study.tell(trial, 0.0)
        seen.append(config)
        assert config["epochs"] == 5
        assert 0.25 <= config["sigma"] <= 2.0
        assert config["steps_per_epoch"] in (8, 16, 24, 32)
        assert config["graph"] in ("G0", "G1", "G2")
    # log scale: the geometric midpoint ~0.707 splits the draws roughly in half, the
    # arithmetic midpoint 1.125 does not (2/3 of a log-uniform draw falls below it).
    below = sum(c["sigma"] < math.sqrt(0.25 * 2.0) for c in seen)
    assert 10 <= below <= 30
    dists = study.trials[0].distributions
    assert dists["sigma"].log and dists["steps_per_epoch"].step == 8


def test_grid_lists_every_value():
    space = parse_search_space({"steps_per_epoch": {"type": "int", "low": 8, "high": 32,
                                                    "step": 8},
                                "sigma": {"type": "float", "low": 0.5, "high": 1.0,
                                          "step": 0.25},
                                "graph": {"type": "categorical", "choices": ["G0", "G2"]}})
    assert space.grid() == {"steps_per_epoch": [8, 16, 24, 32], "sigma": [0.5, 0.75, 1.0],
                            "graph": ["G0", "G2"]}
    with pytest.raises(ParameterError, match="'sigma' .*no finite grid.*give 'sigma' a step"):
        parse_search_space({"sigma": SPEC["sigma"]}).grid()


def test_unknown_parameter_lists_the_allowed_ones():
    with pytest.raises(ParameterError, match=r"search space 'x.yaml' has unknown parameter\(s\) "
                                             r"\['lr'\]; parameters must be keyword arguments "
                                             r"of run_protocol, which are \['graph', 'sigma'\]"):
        parse_search_space({"lr": {"type": "float", "low": 1e-4, "high": 1e-2},
                            "sigma": 0.5}, allowed=["sigma", "graph"], source="x.yaml")


@pytest.mark.parametrize("spec, match", [
    ({"type": "float", "low": 1.0, "high": 1.0},
     r"empty range: low=1.0 must be below high=1.0; swap or widen"),
    ({"type": "int", "low": 5, "high": 2}, r"empty range: low=5 must be below high=2"),
    ({"type": "float", "low": 0.0, "high": 1.0, "log": True},
     r"log scale so low must be positive, got low=0.0"),
    ({"type": "float", "low": 0.1, "high": 1.0, "log": True, "step": 0.1},
     r"both log=true and step=0.1"),
    ({"type": "int", "low": 1, "high": 4, "step": 5}, r"step=5; step must be a positive "
                                                      r"integer no larger than high - low \(3\)"),
    ({"type": "int", "low": 1.5, "high": 4}, r"low=1.5; low must be an integer"),
    ({"type": "float", "low": 0, "high": "big"}, r"high='big'; high must be a finite number"),
    ({"type": "normal", "low": 0, "high": 1}, r"type='normal'; type must be one of "
                                              r"\['categorical', 'float', 'int'\]"),
    ({"type": "float", "low": 0, "high": 1, "scale": 2}, r"unknown key\(s\) \['scale'\]"),
    ({"type": "categorical", "choices": []}, r"needs a non-empty list of choices"),
    ({"type": "categorical", "choices": ["G0", "G0"]}, r"repeated choices"),
    ({"type": "categorical", "choices": [[1, 2]]}, r"choices must be strings, numbers"),
])
def test_bad_distributions(spec, match):
    with pytest.raises(ParameterError, match=match):
        parse_search_space({"sigma": spec})


def test_all_fixed_or_empty_is_refused():
    with pytest.raises(ParameterError, match=r"searches no parameter \(all \['sigma'\] are "
                                             r"fixed\)"):
        parse_search_space({"sigma": 0.5})
    with pytest.raises(ParameterError, match="must be a non-empty mapping"):
        parse_search_space(None)


def test_load_from_yaml(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text("sigma: {type: float, low: 0.25, high: 2.0, log: true}\nepochs: 3\n")
    space = load_search_space(path, allowed=["sigma", "epochs"])
    assert space.source == str(path) and space.fixed == {"epochs": 3}
    with pytest.raises(DataError, match="does not exist"):
        load_search_space(tmp_path / "missing.yaml")
    path.write_text("sigma: [unclosed\n")
    with pytest.raises(DataError, match="is not valid YAML"):
        load_search_space(path)


def test_default_histn_space_matches_evaluate_and_run_protocol():
    from pathlib import Path

    from physioemo.cli.evaluate import DEFAULTS
    from physioemo.tuning.objective import searchable_params

    path = Path(__file__).resolve().parents[2] / "configs" / "search_space_histn.yaml"
    space = load_search_space(path, allowed=searchable_params(DEFAULTS))
    params = {p.name: p for p in space.params}
    assert set(params) == {"sigma", "smoothing", "graph", "epochs", "lr", "dropout",
                           "batch_size"}
    lr, dropout, batch = params["lr"], params["dropout"], params["batch_size"]
    assert (lr.type, lr.low, lr.high, lr.log) == ("float", 1e-4, 1e-2, True)
    assert (dropout.type, dropout.low, dropout.high) == ("float", 0.0, 0.6)
    assert batch.choices == [64, 128, 256]
    # the commented-out entries really are not accepted anywhere
    for name in ("n_filters", "kernel_length", "cheb_k", "weight_decay"):
        assert f"# {name}:" in path.read_text()
        assert name not in searchable_params(DEFAULTS)


def test_the_shipped_search_space_is_inside_the_valid_values():
    from pathlib import Path

    from physioemo.tuning.search_space import VALID_RANGES

    path = Path(__file__).resolve().parents[2] / "configs" / "search_space_histn.yaml"
    space = load_search_space(path, ranges=VALID_RANGES)
    assert {"dropout", "lr"} <= set(space.names)
    with pytest.raises(ParameterError, match=r"'lr' can take a value that no trial accepts "
                                             r"\(lr=0.0 is out of range: it must be > 0.0"):
        parse_search_space({"lr": {"type": "float", "low": 0.0, "high": 0.1}},
                           ranges=VALID_RANGES)
