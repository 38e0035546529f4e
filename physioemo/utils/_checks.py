"""Validation helpers.

Each error message says four things: what is wrong, the constraint, what was received,
and how to fix it. Never use ``assert`` for user input (asserts vanish under ``-O``).
"""

from __future__ import annotations

import numbers
import os
from pathlib import Path

import numpy as np

from ..exceptions import DataError, ParameterError


def _fmt(value):
    if isinstance(value, np.ndarray):
        return f"array of shape {value.shape} and dtype {value.dtype}"
    return repr(value)


def check_option(name, value, allowed, *, hint=None):
    """Check that ``value`` is one of ``allowed`` and return it.

    Parameters
    ----------
    name : str
        Parameter name used in the message.
    value : object
        The value received.
    allowed : sequence
        The accepted values.
    hint : str | None
        How to fix it; defaults to listing the allowed values.

    Returns
    -------
    value : object
        ``value`` unchanged.
    """
    if value not in allowed:
        choices = ", ".join(repr(a) for a in allowed)
        fix = hint or f"use one of {choices}"
        raise ParameterError(f"{name}={_fmt(value)} is not a valid option; it must be one of "
                             f"{choices}; {fix}.")
    return value


def check_type(name, value, types, *, type_name=None):
    """Check that ``value`` is an instance of ``types`` and return it."""
    if not isinstance(value, types):
        tn = type_name or (" or ".join(t.__name__ for t in types)
                           if isinstance(types, tuple) else types.__name__)
        raise ParameterError(f"{name} must be {tn}, got {type(value).__name__} "
                             f"({_fmt(value)}); pass a {tn}.")
    return value


def check_number(name, value, *, low=None, high=None, low_inclusive=True,
                 high_inclusive=True, integer=False, hint=None):
    """Check a scalar number against optional bounds and return it.

    Parameters
    ----------
    name : str
        Parameter name used in the message.
    value : int | float
        The value received.
    low, high : float | None
        Bounds; ``None`` means unbounded.
    low_inclusive, high_inclusive : bool
        Whether the bounds themselves are allowed.
    integer : bool
        Require an integer (``bool`` is rejected).
    hint : str | None
        How to fix it.

    Returns
    -------
    value : int | float
        ``value`` as ``int`` when ``integer`` else as ``float``.
    """
    kind = "an integer" if integer else "a number"
    ok_type = isinstance(value, numbers.Integral) if integer else isinstance(value, numbers.Real)
    if isinstance(value, bool) or not ok_type:
        raise ParameterError(f"{name} must be {kind}, got {type(value).__name__} "
                             f"({_fmt(value)}); pass {kind}.")
    if not integer and not np.isfinite(value):
        raise ParameterError(f"{name} must be finite, got {value!r}; pass a finite number.")
    parts = []
    bad = False
    if low is not None:
        parts.append(f"{'>=' if low_inclusive else '>'} {low}")
        bad |= value < low if low_inclusive else value <= low
    if high is not None:
        parts.append(f"{'<=' if high_inclusive else '<'} {high}")
        bad |= value > high if high_inclusive else value >= high
    if bad:
        fix = hint or f"choose {name} {' and '.join(parts)}"
        raise ParameterError(f"{name}={value!r} is out of range: it must be "
                             f"{' and '.join(parts)}; {fix}.")
    return int(value) if integer else float(value)


def check_array(name, data, *, ndim=None, min_ndim=None, dtype_kind="f", finite=True,
                min_times=None):
    """Validate an array argument and return it as a NumPy array.

    Parameters
    ----------
    name : str
        Parameter name used in the message.
    data : array-like
        The array received.
    ndim : int | None
        Required number of dimensions.
    min_ndim : int | None
        Minimum number of dimensions.
    dtype_kind : str | None
        Allowed ``dtype.kind`` characters (``"f"`` floating point); ``None`` skips it.
    finite : bool
        Reject NaN and infinite values.
    min_times : int | None
        Minimum length of the last (time) axis.

    Returns
    -------
    data : ndarray
        The validated array (not copied).
    """
    arr = np.asarray(data)
    if dtype_kind is not None and arr.dtype.kind not in dtype_kind:
        raise ParameterError(
            f"{name} must be a floating-point array, got dtype {arr.dtype}; convert it "
            f"with {name}.astype(np.float64).")
    if ndim is not None and arr.ndim != ndim:
        raise ParameterError(f"{name} must have {ndim} dimension(s), got shape {arr.shape}; "
                             f"reshape it to {ndim}-D (time on the last axis).")
    if min_ndim is not None and arr.ndim < min_ndim:
        raise ParameterError(f"{name} must have at least {min_ndim} dimension(s), got shape "
                             f"{arr.shape}; add the missing axes (time on the last axis).")
    if min_times is not None and arr.shape[-1] < min_times:
        raise ParameterError(f"{name} needs at least {min_times} samples on its last axis, "
                             f"got {arr.shape[-1]} (shape {arr.shape}); pass a longer "
                             "signal or shorten the filter/window.")
    if finite and arr.dtype.kind in "fc" and arr.size and not np.isfinite(arr).all():
        n_bad = int(arr.size - np.isfinite(arr).sum())
        raise DataError(f"{name} contains {n_bad} NaN or infinite value(s) (shape {arr.shape});"
                        " all samples must be finite; interpolate or drop the bad samples.")
    return arr


def check_sfreq(sfreq):
    """Check a sampling frequency in Hz and return it as float."""
    return check_number("sfreq", sfreq, low=0, low_inclusive=False,
                        hint="pass the sampling frequency in Hz, e.g. sfreq=128.0")


def check_freq(name, freq, sfreq, *, allow_none=True):
    """Check a cut-off frequency against Nyquist and return it (or ``None``)."""
    if freq is None:
        if not allow_none:
            raise ParameterError(f"{name} must be a frequency in Hz, got None; pass a number.")
        return None
    freq = check_number(name, freq, low=0, low_inclusive=False,
                        hint=f"pass a positive frequency in Hz for {name}")
    nyq = sfreq / 2.0
    if freq >= nyq:
        raise ParameterError(f"{name}={freq} must be below Nyquist ({nyq} Hz for "
                             f"sfreq={sfreq}); lower {name} or resample.")
    return freq


def check_path(name, path, *, must_exist=True, env_var=None, hint=None):
    """Check a file path and return it as :class:`pathlib.Path`.

    Parameters
    ----------
    name : str
        What the path is, used in the message (e.g. ``"DREAMER file"``).
    path : str | os.PathLike | None
        The path received; ``None`` falls back to ``env_var``.
    must_exist : bool
        Require the file to exist.
    env_var : str | None
        Environment variable consulted when ``path`` is ``None``.
    hint : str | None
        How to fix a missing file.
    """
    if path is None and env_var is not None:
        path = os.environ.get(env_var)
    if path is None:
        where = f" or set {env_var}" if env_var else ""
        raise ParameterError(f"no {name} given; pass a path{where}.")
    path = Path(path).expanduser()
    if must_exist and not path.exists():
        fix = hint or "check the path"
        raise DataError(f"{name} not found: {str(path)!r} does not exist; {fix}.")
    return path


def check_random_state(seed):
    """Turn ``seed`` (None, int or Generator) into a :class:`numpy.random.Generator`."""
    if isinstance(seed, np.random.Generator):
        return seed
    if seed is None or (isinstance(seed, numbers.Integral) and not isinstance(seed, bool)
                        and seed >= 0):
        return np.random.default_rng(seed)
    raise ParameterError(f"seed must be None, a non-negative integer or a numpy Generator, "
                         f"got {_fmt(seed)}; pass e.g. seed=0.")


def _same_file(a, b):
    """Whether ``a`` and ``b`` name the same existing file (same inode, or same path)."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return Path(a).resolve() == Path(b).resolve()


def check_output_path(path, *, force=False, inputs=(), kind="file", name="--out",
                      parents=False):
    """Check, before any work starts, that an output can be written at ``path``.

    Refused with a one-line :class:`DataError` (what, the constraint, what was given,
    the fix): a folder where a file is expected or the reverse; an existing file without
    ``force``; a missing or unwritable folder (a probe file is really created, since
    ``os.access`` says yes to root where writing fails, e.g. under ``/proc``); and an
    output that is one of ``inputs`` (compared by inode, then by resolved path), which
    ``force`` never overrides.

    Parameters
    ----------
    path : str | os.PathLike
        The output.
    force : bool
        Allow replacing an existing file (never an input). Ignored for ``kind="dir"``,
        whose commands decide themselves what an existing folder means (e.g. resume).
    inputs : iterable of str | os.PathLike | None
        The command's input files; ``None`` entries are skipped.
    kind : {"file", "dir"}
        Whether the output is a file, or a folder that is created (with its parents) if
        needed.
    name : str
        How the output is called in the message (the option's name).
    parents : bool
        For a file: its missing folders are created by the command, so only the nearest
        existing one is checked (folders of ``kind="dir"`` always are).

    Returns
    -------
    path : Path
        ``path`` with ``~`` expanded.
    """
    check_option("kind", kind, ("file", "dir"))
    path = Path(path).expanduser()
    for inp in inputs:
        if inp is not None and path.exists() and _same_file(path, inp):
            raise DataError(
                f"{name} {str(path)!r} is also an input of this command ({str(inp)!r}); an "
                "output never replaces an input, not even with --force; choose another "
                f"{name}.")
    if kind == "file" and path.is_dir():
        raise DataError(f"{name} {str(path)!r} is a folder, where a file is to be written; "
                        "move the folder away or choose another file name.")
    if kind == "dir" and path.exists() and not path.is_dir():
        raise DataError(f"{name} {str(path)!r} is a file, where a folder is to be written; "
                        f"move the file away or choose another {name}.")
    if kind == "file" and path.exists() and not force:
        raise DataError(f"{name} {str(path)!r} already exists; physioemo does not overwrite "
                        f"files unless asked; choose another {name} or pass --force to "
                        "replace it.")
    if kind == "file" and not parents:
        folder = path.parent
        if not folder.is_dir():
            raise DataError(f"cannot write {name} {str(path)!r}: folder {str(folder)!r} "
                            f"does not exist; create it or choose another {name}.")
    else:  # the command creates the missing folders: check the nearest existing one
        folder = path if kind == "dir" else path.parent
        while not folder.exists() and folder != folder.parent:
            folder = folder.parent
        if not folder.is_dir():
            raise DataError(f"cannot create {name} {str(path)!r}: {str(folder)!r} is a "
                            f"file, not a folder; choose another {name}.")
    probe = folder / f".physioemo-probe-{os.getpid()}"
    try:  # os.access() says yes to root where writing fails (/proc, read-only mounts)
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        raise DataError(f"cannot write {name} {str(path)!r}: folder {str(folder)!r} is not "
                        f"writable ({err.strerror or err}); choose another {name} or fix the "
                        "permissions.") from None
    return path


def check_resample(what, sfreq, target, *, resample, flag="--resample"):
    """Refuse a sampling-rate mismatch unless resampling was asked for; log it if so.

    Parameters
    ----------
    what : str
        The signal, named in the message (e.g. ``"'rec.edf'"``).
    sfreq, target : float
        Its sampling rate and the rate needed, in Hz.
    resample : bool
        Whether the user asked for resampling.
    flag : str
        The option that asks for it, named in the message.

    Returns
    -------
    needed : bool
        True if the signal must be resampled from ``sfreq`` to ``target``.
    """
    from .logging import logger

    if float(sfreq) == float(target):
        return False
    if not resample:
        raise DataError(f"{what} is sampled at {sfreq:g} Hz but the model expects {target:g} "
                        f"Hz; a recording is never resampled silently; pass {flag} to "
                        f"resample it to {target:g} Hz, or record at {target:g} Hz.")
    if sfreq < target:
        logger.warning("upsampling %s from %g Hz to %g Hz (%s): it holds nothing above %g Hz "
                       "while the model saw content up to %g Hz; predictions may be off",
                       what, sfreq, target, flag, sfreq / 2, target / 2)
    else:
        logger.warning("resampling %s from %g Hz to %g Hz (%s, low-pass at %g Hz)", what,
                       sfreq, target, flag, target / 2)
    return True
