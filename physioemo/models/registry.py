"""Model registry (names -> classes) and checkpoints that load with ``weights_only=True``.

A checkpoint carries the SHA-256 of its weights, written at save time; loading recomputes
it and refuses a file whose weights changed (flipped bytes in a tensor would otherwise
predict NaN, every window rated 1, without an error). Every floating-point tensor must also
be finite. Checkpoints written before the checksum existed (format version 1) load with a
warning after the finiteness check alone.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import torch

from ..exceptions import DataError, ParameterError
from ..utils._checks import check_option
from ..utils.logging import logger
from .histn import HiSTN

#: Models by name, for the CLI, configs and the search.
MODELS = {"histn": HiSTN}

CHECKPOINT_FORMAT = "physioemo-checkpoint"
CHECKPOINT_VERSION = 2  # 2: with the weights' SHA-256
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


def weights_sha256(state_dict):
    """SHA-256 over a state dict's names, dtypes, shapes and bytes, in name order.

    Parameters
    ----------
    state_dict : dict of str to torch.Tensor
        The weights.

    Returns
    -------
    sha256 : str
        Hex digest.
    """
    h = hashlib.sha256()
    for name in sorted(state_dict):
        t = state_dict[name].detach().cpu().contiguous().reshape(-1)
        h.update(f"{name}|{t.dtype}|{tuple(state_dict[name].shape)}|".encode())
        h.update(t.view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def _verify_weights(path, payload):
    """Refuse weights that are not a dict of tensors, not finite, or not as saved."""
    state = payload["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor)
                                              for v in state.values()):
        raise DataError(f"checkpoint {str(path)!r} has no valid state_dict (a mapping of names "
                        "to tensors); re-create it with save_checkpoint.")
    stored = payload.get("sha256")
    if stored is not None:
        actual = weights_sha256(state)
        if actual != stored:
            raise DataError(f"checkpoint {str(path)!r} is corrupt: the SHA-256 of its weights "
                            f"({actual[:12]}...) differs from the one written when it was "
                            f"saved ({str(stored)[:12]}...); the file was damaged or edited; "
                            "copy it again or re-train.")
    bad = {k: int((~torch.isfinite(v)).sum()) for k, v in state.items()
           if v.is_floating_point() and not torch.isfinite(v).all()}
    if bad:
        name, n = next(iter(bad.items()))
        raise DataError(f"checkpoint {str(path)!r} holds non-finite weights ({n} NaN/inf in "
                        f"{name!r}, {len(bad)} tensor(s) in all); a model must have finite "
                        "weights; the file is corrupt or training diverged; re-train.")
    if stored is None:
        logger.warning("checkpoint %s has no checksum (written by an older physioemo): its "
                       "weights are finite, but damage that keeps them finite cannot be "
                       "detected; save it again with save_checkpoint to add one", path)


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
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    payload = {
        "format": CHECKPOINT_FORMAT,
        "version": CHECKPOINT_VERSION,
        "model": _model_name(model),
        "config": dict(model.config),
        "ch_names": list(getattr(model, "ch_names", [])),
        "state_dict": state,
        "sha256": weights_sha256(state),
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

    The weights are verified first: their SHA-256 must equal the one written at save time
    (files from before checksums are accepted with a warning) and they must be finite.

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
    _verify_weights(path, payload)
    try:
        model = build_model(payload["model"], **payload["config"])
        model.load_state_dict(payload["state_dict"])
    except (TypeError, RuntimeError, ParameterError) as err:
        raise DataError(f"checkpoint {str(path)!r} does not match the {payload['model']} model "
                        f"of this physioemo version ({str(err).splitlines()[0]}); re-train or "
                        "use the physioemo version that wrote it.") from err
    model.to(map_location).eval()
    return model, payload.get("extra")
