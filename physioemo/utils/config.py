"""Configuration files and run metadata.

Config keys are exactly constructor/function keyword arguments, so a YAML file
round-trips without a translation layer; unknown keys are an error. Precedence:
CLI flag > documented environment variable (:data:`ENV_VARS`) > config file > default.
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

#: The only environment variables physioemo reads, each with one meaning in every command.
#: None carries a destructive switch (``--force``, ``--out``); any other ``PHYSIOEMO_*``
#: variable is ignored with a warning (:func:`warn_unknown_env`).
ENV_VARS = {
    "PHYSIOEMO_DREAMER_PATH": "the DREAMER.mat file, where --dreamer is not given "
                              "(evaluate, tune, info)",
    "PHYSIOEMO_CACHE_DIR": "the preprocessing cache folder, where --cache-dir is not given "
                           "(default ~/.cache/physioemo)",
    "PHYSIOEMO_STORAGE": "the Optuna storage URL of tune, where --storage is not given",
    "PHYSIOEMO_DEVICES_DIR": "a folder of extra or replacement device profiles (*.yaml)",
    "PHYSIOEMO_NATIVE": "0 turns HiSTN's fused CPU kernels (Numba) off",
    "PHYSIOEMO_HARDWARE": "the test suite only: the headset that `pytest -m hardware` uses",
}

#: Settings keys read from the environment by :func:`resolve`, and their variable.
ENV_SETTINGS = {"dreamer": "PHYSIOEMO_DREAMER_PATH", "cache_dir": "PHYSIOEMO_CACHE_DIR",
                "storage": "PHYSIOEMO_STORAGE"}

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


def resolve(defaults, config=None, cli=None):
    """Merge settings with precedence CLI > environment > config file > defaults.

    Parameters
    ----------
    defaults : dict
        Every accepted key with its default value.
    config : dict | None
        Values from a config file.
    cli : dict | None
        Values given on the command line; ``None`` values count as not given.

    Returns
    -------
    resolved : dict
        The merged settings.

    Notes
    -----
    Only the keys of :data:`ENV_SETTINGS` come from the environment (as text, a path or
    a URL); no other setting does, whatever ``PHYSIOEMO_*`` variables are set.
    """
    out = dict(defaults)
    if config:
        check_keys(config, defaults)
        out.update(config)
    for key, var in ENV_SETTINGS.items():
        if key in defaults and os.environ.get(var):
            out[key] = os.environ[var]
    for key, value in (cli or {}).items():
        if value is not None:
            out[key] = value
    return out


def warn_unknown_env(environ=None):
    """Log a warning for each ``PHYSIOEMO_*`` variable that physioemo does not read.

    Parameters
    ----------
    environ : mapping | None
        The environment (default :data:`os.environ`).

    Returns
    -------
    unknown : list of str
        The ignored variables, sorted.
    """
    from .logging import logger

    environ = os.environ if environ is None else environ
    unknown = sorted(k for k in environ if k.startswith("PHYSIOEMO_") and k not in ENV_VARS)
    for name in unknown:
        logger.warning("ignoring the environment variable %s: physioemo reads only %s; "
                       "options such as --force or --out are given on the command line or "
                       "in --config", name, ", ".join(ENV_VARS))
    return unknown


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
