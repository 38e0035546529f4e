"""Model registry (names -> classes) and checkpoints that load with ``weights_only=True``."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from ..exceptions import DataError, ParameterError
from ..utils._checks import check_option
from .histn import HiSTN

#: Models by name, for the CLI, configs and the search.
MODELS = {"histn": HiSTN}

CHECKPOINT_FORMAT = "physioemo-checkpoint"
CHECKPOINT_VERSION = 1
_PLAIN = (str, int, float, bool, type(None), torch.Tensor)


def build_model(name="histn", **kwargs):
    """Build a registered model.

    Parameters
    ----------
    name : str
        Key of :data:`MODELS`.
    **kwargs
        Constructor arguments (e.g. ``graph="G1", dropout=0.2`` for HiSTN).

    Returns
    -------
    model : torch.nn.Module
    """
    name = check_option("name", name, tuple(MODELS))
    return MODELS[name](**kwargs)


def _model_name(model):
    for name, cls in MODELS.items():
        if type(model) is cls:
            return name
    raise ParameterError(f"model of type {type(model).__name__} is not registered; the "
                         f"registered models are {sorted(MODELS)}; add it to MODELS first.")


def _check_plain(value, where="extra"):
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, str | int):
                raise ParameterError(f"{where} has a key {k!r} of type {type(k).__name__}; "
                                     "checkpoint dictionaries need str or int keys.")
            _check_plain(v, f"{where}[{k!r}]")
    elif isinstance(value, list | tuple):
        for i, v in enumerate(value):
            _check_plain(v, f"{where}[{i}]")
    elif not isinstance(value, _PLAIN):
        raise ParameterError(
            f"{where} is a {type(value).__name__}; checkpoints hold only dicts, lists, "
            "str/int/float/bool/None and torch tensors (so that they load with "
            "weights_only=True); convert it, e.g. torch.as_tensor(array) or value.tolist().")


def save_checkpoint(path, model, *, extra=None):
    """Save a model's weights, constructor config and channel names.

    Parameters
    ----------
    path : str | os.PathLike
        Output file (written atomically).
    model : torch.nn.Module
        A registered model with a ``config`` dict.
    extra : dict | None
        Anything else to keep (epoch, metrics, seed...), made of plain Python values and
        tensors only.
    """
    _check_plain(extra)
    _check_plain(model.config, "model.config")
    payload = {
        "format": CHECKPOINT_FORMAT,
        "version": CHECKPOINT_VERSION,
        "model": _model_name(model),
        "config": dict(model.config),
        "ch_names": list(getattr(model, "ch_names", [])),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "extra": extra,
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)
    return path


def load_checkpoint(path, map_location="cpu"):
    """Rebuild a model from :func:`save_checkpoint`'s file (loaded with ``weights_only``).

    Parameters
    ----------
    path : str | os.PathLike
        Checkpoint file.
    map_location : str | torch.device
        Where to put the tensors.

    Returns
    -------
    model : torch.nn.Module
        In eval mode.
    extra : dict | None
        What was passed as ``extra``.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"checkpoint not found: {str(path)!r} does not exist or is not a file; "
                        "check the path (checkpoints are written by training runs).")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:
        raise DataError(f"checkpoint {str(path)!r} could not be read ({type(err).__name__}: "
                        f"{str(err).splitlines()[0] if str(err) else ''}); it must be a file "
                        "written by physioemo's save_checkpoint; re-create it.") from err
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise DataError(f"{str(path)!r} is not a physioemo checkpoint (no "
                        f"format={CHECKPOINT_FORMAT!r} entry); pass a file written by "
                        "save_checkpoint.")
    missing = [k for k in ("model", "config", "state_dict") if k not in payload]
    if missing or payload["model"] not in MODELS:
        raise DataError(f"checkpoint {str(path)!r} is incomplete (missing {missing}, model="
                        f"{payload.get('model')!r}); it must hold one of {sorted(MODELS)}; "
                        "re-create it with save_checkpoint.")
    try:
        model = build_model(payload["model"], **payload["config"])
        model.load_state_dict(payload["state_dict"])
    except (TypeError, RuntimeError, ParameterError) as err:
        raise DataError(f"checkpoint {str(path)!r} does not match the {payload['model']} model "
                        f"of this physioemo version ({str(err).splitlines()[0]}); re-train or "
                        "use the physioemo version that wrote it.") from err
    model.to(map_location).eval()
    return model, payload.get("extra")
