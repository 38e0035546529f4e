import json

import pytest
import yaml

from physioemo.exceptions import DataError, ParameterError
from physioemo.utils.config import load_config, resolve, versions, write_run_metadata


def test_precedence_cli_env_config_default(tmp_path, monkeypatch):
    defaults = {"epochs": 50, "lr": 1e-3, "graph": "G0", "cache_dir": None, "dreamer": None}
    cfg = tmp_path / "c.yaml"
    cfg.write_text("epochs: 10\nlr: 0.01\ngraph: G1\ncache_dir: a\ndreamer: d.mat\n")
    monkeypatch.setenv("PHYSIOEMO_CACHE_DIR", "b")
    monkeypatch.setenv("PHYSIOEMO_DREAMER_PATH", "e.mat")
    out = resolve(defaults, load_config(cfg), {"graph": "G1", "epochs": None,
                                               "dreamer": "f.mat"})
    assert out == {"epochs": 10, "lr": 0.01, "graph": "G1", "cache_dir": "b",
                   "dreamer": "f.mat"}


def test_only_documented_environment_variables_are_read(monkeypatch, caplog):
    from physioemo.utils.config import ENV_VARS, warn_unknown_env

    defaults = {"force": False, "out": None, "lr": 1e-3, "subjects": None, "storage": None}
    for name, value in (("FORCE", "yes"), ("OUT", "x.edf"), ("LR", "0.5"),
                        ("SUBJECTS", "1"), ("STORAGE", "sqlite:///s.db")):
        monkeypatch.setenv(f"PHYSIOEMO_{name}", value)
    assert resolve(defaults) == {**defaults, "storage": "sqlite:///s.db"}
    with caplog.at_level("WARNING", logger="physioemo"):
        unknown = warn_unknown_env()
    assert unknown == ["PHYSIOEMO_FORCE", "PHYSIOEMO_LR", "PHYSIOEMO_OUT", "PHYSIOEMO_SUBJECTS"]
    assert "ignoring the environment variable PHYSIOEMO_FORCE" in caplog.text
    assert "PHYSIOEMO_STORAGE" in ENV_VARS and not any(
        k.endswith(("FORCE", "OUT")) for k in ENV_VARS)


def test_unknown_keys_are_errors(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("epochs: 10\nepoch: 3\n")
    with pytest.raises(ParameterError, match=r"unknown key\(s\) \['epoch'\]"):
        load_config(cfg, allowed={"epochs"})
    with pytest.raises(ParameterError, match="unknown key"):
        resolve({"epochs": 1}, {"epoch": 2})


def test_bad_config_files(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("a: [1, 2\n")
    with pytest.raises(DataError, match="not valid YAML"):
        load_config(bad)
    lst = tmp_path / "list.yaml"
    lst.write_text("- 1\n- 2\n")
    with pytest.raises(DataError, match="must hold a mapping"):
        load_config(lst)


def test_run_metadata_round_trip(tmp_path):
    import numpy as np

    config = {"epochs": np.int64(3), "subjects": (1, 2), "path": tmp_path}
    write_run_metadata(tmp_path / "run", config, seed=7, command=["evaluate"])
    back = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert back == {"epochs": 3, "subjects": [1, 2], "path": str(tmp_path)}
    meta = json.loads((tmp_path / "run" / "run.json").read_text())
    assert meta["seed"] == 7
    assert meta["versions"]["numpy"] == np.__version__
    assert not list((tmp_path / "run").glob(".*tmp*"))


def test_versions_has_python():
    import platform

    assert versions()["python"] == platform.python_version()
