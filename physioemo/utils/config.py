"""Configuration files and run metadata.

Config keys are exactly constructor/function keyword arguments, so a YAML file
round-trips without a translation layer; unknown keys are an error. Precedence:
CLI flag > ``PHYSIOEMO_*`` environment variable > config file > default.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import sys
from importlib import metadata
from pathlib import Path

from ..exceptions import DataError, ParameterError

_VERSIONED = ("physioemo", "numpy", "scipy", "numba", "mne", "torch", "torch-geometric",
              "brainflow", "pyedflib", "optuna", "scikit-learn")


def load_config(path, *, allowed=None):
    """Read a YAML config file into a dict.

    Parameters
    ----------
    path : str | Path
        The YAML file.
    allowed : iterable of str | None
        Accepted keys; any other key raises :class:`ParameterError`.

    Returns
    -------
    config : dict
        The parsed mapping (empty for an empty file).
    """
    import yaml

    path = Path(path)
    if not path.is_file():
        raise DataError(f"config file {str(path)!r} does not exist; pass the path of a YAML "
                        "file (see configs/ for examples).")
    try:
        config = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise DataError(f"config file {str(path)!r} is not valid YAML: {err}; fix the "
                        "syntax.") from None
    if not isinstance(config, dict):
        raise DataError(f"config file {str(path)!r} must hold a mapping of key: value, got a "
                        f"{type(config).__name__}; write one key per line.")
    if allowed is not None:
        check_keys(config, allowed, where=f"config file {str(path)!r}")
    return config


def check_keys(config, allowed, *, where="config"):
    """Raise :class:`ParameterError` if ``config`` has keys outside ``allowed``."""
    unknown = sorted(set(config) - set(allowed))
    if unknown:
        raise ParameterError(f"{where} has unknown key(s) {unknown}; allowed keys are "
                             f"{sorted(allowed)}; remove or rename them.")


def resolve(defaults, config=None, cli=None, *, env_prefix="PHYSIOEMO_"):
    """Merge settings with precedence CLI > environment > config file > defaults.

    Parameters
    ----------
    defaults : dict
        Every accepted key with its default value.
    config : dict | None
        Values from a config file.
    cli : dict | None
        Values given on the command line; ``None`` values count as not given.
    env_prefix : str
        Environment variables ``{env_prefix}{KEY.upper()}`` override the config file;
        their text is parsed as YAML scalars.

    Returns
    -------
    resolved : dict
        The merged settings.
    """
    import yaml

    out = dict(defaults)
    if config:
        check_keys(config, defaults)
        out.update(config)
    for key in defaults:
        env = os.environ.get(env_prefix + key.upper())
        if env is not None:
            out[key] = yaml.safe_load(env)
    for key, value in (cli or {}).items():
        if value is not None:
            out[key] = value
    return out


def versions():
    """Return the versions of Python and the packages physioemo depends on."""
    out = {"python": sys.version.split()[0], "platform": platform.platform()}
    for name in _VERSIONED:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


def write_run_metadata(out_dir, config, *, seed=None, command=None):
    """Write the resolved config and provenance next to a run's results.

    Writes ``config.yaml`` (the resolved settings, loadable with ``--config``) and
    ``run.json`` (seed, versions, command line, start time).

    Parameters
    ----------
    out_dir : str | Path
        The run's output directory (created if needed).
    config : dict
        The resolved settings.
    seed : int | None
        The seed used.
    command : list of str | None
        The command line.

    Returns
    -------
    out_dir : Path
        The output directory.
    """
    import yaml

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out_dir / "config.yaml", yaml.safe_dump(_plain(config), sort_keys=False))
    meta = {"seed": seed, "versions": versions(), "command": command,
            "started": datetime.datetime.now(datetime.timezone.utc).isoformat()}
    atomic_write_text(out_dir / "run.json", json.dumps(meta, indent=2, default=str))
    return out_dir


def atomic_write_text(path, text):
    """Write ``text`` to ``path`` atomically (temporary file + rename)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(tmp, "w") as fid:
        fid.write(text)
        fid.flush()
        os.fsync(fid.fileno())
    os.replace(tmp, path)


def _plain(obj):
    """Convert tuples, Paths and NumPy scalars into YAML-safe Python objects."""
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "item") and callable(obj.item):
        return obj.item()
    return obj
