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
