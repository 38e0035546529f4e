"""On-disk cache of preprocessed DREAMER arrays that is never silently stale.

The cache key is a SHA-256 over, as canonical JSON:

* the source file's content: the SHA-256 of every byte (:func:`file_sha256`). Hashing the
  2-GB DREAMER file takes seconds, so the hash is memoised in ``file-hashes.json`` in the
  cache folder under the file's device, inode, size, ``st_mtime_ns`` and ``st_ctime_ns``.
  An edit in place that restores the size and the mtime (``os.utime``) still changes the
  ctime, which cannot be set back, so the file is hashed again and a stale entry is never
  reused;
* every preprocessing parameter and the subject list;
* the physioemo version and :data:`physioemo.datasets.dreamer.PREPROCESS_VERSION`.

Entries are ``.npz`` files (``data``, ``labels``, ``key``) written to a temporary file in the
same folder, flushed, then renamed over the final name, so a crash never leaves a partial
file under a trusted name. They are read with ``allow_pickle=False``; an entry whose stored
key differs from the expected one is rebuilt.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

import numpy as np

from .. import __version__
from ..exceptions import DataError, ParameterError
from ..utils._checks import check_path
from ..utils.logging import logger
from . import dreamer as _dreamer
from .dreamer import _WHERE_TO_GET, ENV_VAR, PREPROCESS_VERSION, histn_preprocess, load_dreamer

#: Bytes read at a time when hashing a source file.
_CHUNK = 1 << 23
#: Memo of source-file hashes, in the cache folder.
HASH_MEMO = "file-hashes.json"
#: Environment variable overriding the default cache folder.
CACHE_ENV_VAR = "PHYSIOEMO_CACHE_DIR"


def default_cache_dir():
    """Return ``$PHYSIOEMO_CACHE_DIR`` or ``~/.cache/physioemo``."""
    env = os.environ.get(CACHE_ENV_VAR)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "physioemo"


def file_sha256(path, *, memo_dir=None):
    """SHA-256 of a file's content, memoised under its inode, size, mtime and ctime.

    Parameters
    ----------
    path : str | Path
        The file.
    memo_dir : str | Path | None
        Folder of the memo file (default: :func:`default_cache_dir`); an unwritable one
        only costs a re-hash next time.

    Returns
    -------
    sha256 : str
        Hex digest of every byte of the file.
    """
    from ..utils.config import atomic_write_text

    path = Path(path).resolve()
    st = path.stat()
    stamp = [st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns]
    memo_path = Path(memo_dir if memo_dir is not None else default_cache_dir()) / HASH_MEMO
    try:
        memo = json.loads(memo_path.read_text())
        if not isinstance(memo, dict):
            memo = {}
    except (OSError, ValueError):
        memo = {}
    entry = memo.get(str(path))
    if isinstance(entry, dict) and entry.get("stamp") == stamp:
        return entry["sha256"]
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    digest = h.hexdigest()
    if path.stat().st_ctime_ns == st.st_ctime_ns:  # not changed while it was read
        memo[str(path)] = {"stamp": stamp, "sha256": digest}
        try:
            memo_path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_text(memo_path, json.dumps(memo, indent=1, sort_keys=True))
        except OSError as err:
            logger.debug("could not memoise the hash of %s (%s)", path, err)
    return digest


def cache_key(path, params, *, memo_dir=None, function="histn_preprocess"):
    """SHA-256 hex key of a source file's content, the parameters and the function."""
    payload = {"source_sha256": file_sha256(path, memo_dir=memo_dir), "params": params,
               "physioemo": __version__, "preprocess_version": PREPROCESS_VERSION,
               "function": function}
    text = json.dumps(payload, sort_keys=True, default=_json_default)
    return hashlib.sha256(text.encode()).hexdigest()


def _json_default(obj):
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, (tuple, list, np.ndarray)):
        return list(obj)
    raise TypeError(f"cannot hash parameter of type {type(obj).__name__}")


def load_preprocessed(path=None, *, subjects=None, cache_dir=None, force=False, **params):
    """:func:`histn_preprocess` a DREAMER file through the on-disk cache.

    Parameters
    ----------
    path : str | Path | None
        The DREAMER file; ``None`` reads ``PHYSIOEMO_DREAMER_PATH``.
    subjects : sequence of int | None
        0-based subject indices (default all).
    cache_dir : str | Path | None
        Cache folder; default ``$PHYSIOEMO_CACHE_DIR`` or ``~/.cache/physioemo``.
    force : bool
        Recompute and overwrite the entry even if a valid one exists.
    **params
        Passed to :func:`histn_preprocess` (``l_freq``, ``h_freq``, ``normalization``);
        every one, defaults included, is part of the cache key.

    Returns
    -------
    data : ndarray of float32, shape (n_subjects, n_clips, 14, 7680)
        Preprocessed EEG.
    labels : ndarray of int64, shape (n_subjects, n_clips, 3)
        Classes (rating - 1) for valence, arousal, dominance.
    """
    import inspect

    if path is None and not os.environ.get(ENV_VAR):
        raise ParameterError(f"no DREAMER file given: pass --dreamer PATH (Python: "
                             f"load_preprocessed(path)) or set {ENV_VAR}; {_WHERE_TO_GET}.")
    path = check_path("DREAMER file", path, env_var=ENV_VAR, hint=_WHERE_TO_GET)
    if not path.is_file():
        raise DataError(f"DREAMER file {str(path)!r} is a folder or not a regular file; pass "
                        "the path of DREAMER.mat itself.")
    sig = inspect.signature(_dreamer.histn_preprocess)
    bound = sig.bind(None, subjects=subjects, **params)  # TypeError for unknown keywords
    bound.apply_defaults()
    resolved = {k: v for k, v in bound.arguments.items() if k != "dreamer"}
    if resolved["subjects"] is not None:
        resolved["subjects"] = [int(s) for s in resolved["subjects"]]
    if isinstance(resolved.get("normalization"), str):  # an earlier name hashes as the form
        from .preprocessing import ALIASES

        resolved["normalization"] = ALIASES.get(resolved["normalization"],
                                                resolved["normalization"])
    cache_dir = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    key = cache_key(path, resolved, memo_dir=cache_dir)
    entry = cache_dir / f"dreamer-histn-{key[:24]}.npz"
    if not force and entry.is_file():
        cached = _read_entry(entry, key)
        if cached is not None:
            logger.info("preprocessed DREAMER from cache %s", entry)
            return cached
    # memory maps keep peak memory near the output size (compressed files fall back)
    dreamer = load_dreamer(path, lazy=True)
    data, labels = histn_preprocess(dreamer, **resolved)
    del dreamer
    _write_entry(entry, key, data=data, labels=labels)
    logger.info("cached preprocessed DREAMER in %s", entry)
    return data, labels


def _read_entry(entry, key):
    try:
        with np.load(entry, allow_pickle=False) as z:
            if str(z["key"]) != key:
                logger.warning("cache entry %s has a different key; rebuilding", entry)
                return None
            return z["data"], z["labels"]
    except Exception as err:  # corrupt or foreign file: rebuild, never trust it
        logger.warning("cache entry %s is unreadable (%s); rebuilding", entry, err)
        return None


def _write_entry(entry, key, **arrays):
    """Write ``arrays`` and ``key`` to the cache file ``entry`` atomically (temp + rename)."""
    entry.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{entry.name}.", suffix=".tmp", dir=entry.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays, key=np.array(key))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, entry)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def load_subjects(path, numbers=None, *, cache_dir=None, normalization="paper"):
    """Preprocess only the subjects a run needs, and identify the data independently of them.

    Parameters
    ----------
    path : str | Path
        The DREAMER file.
    numbers : sequence of int | None
        DREAMER's 1-based subject numbers; ``None`` means every subject in the file. A
        subject that is not asked for is never read, so its NaNs or short clips do not
        block the others.
    cache_dir : str | Path | None
        Cache folder (see :func:`load_preprocessed`).
    normalization : {"paper", "causal"}
        The form of :mod:`physioemo.datasets.preprocessing` (see :func:`histn_preprocess`).

    Returns
    -------
    data : ndarray of float32, shape (n_loaded, n_clips, 14, 7680)
        Preprocessed EEG of the subjects, in the order given.
    labels : ndarray of int64, shape (n_loaded, n_clips, 3)
        Their classes.
    numbers : ndarray of int64, shape (n_loaded,)
        The 1-based number of each loaded subject.
    data_id : str
        The source file's content hash and the preprocessing version: the same whichever
        subjects were loaded (for a run's resume guard).
    """
    path = check_path("DREAMER file", path, hint=_WHERE_TO_GET)
    n_subjects = load_dreamer(path, lazy=True).n_subjects
    if numbers is not None:
        numbers = [int(n) for n in numbers]
        bad = [n for n in numbers if not 1 <= n <= n_subjects]
        if bad:
            raise ParameterError(f"subjects {bad} are not in {str(path)!r}, which holds "
                                 f"subjects 1..{n_subjects}; pick subjects in that range.")
    subjects = None if numbers is None else [n - 1 for n in numbers]
    data, labels = load_preprocessed(path, subjects=subjects, cache_dir=cache_dir,
                                     normalization=normalization)
    loaded = np.arange(1, n_subjects + 1) if numbers is None else np.asarray(numbers)
    memo = Path(cache_dir).expanduser() if cache_dir is not None else None
    data_id = f"sha256:{file_sha256(path, memo_dir=memo)[:20]}/v{PREPROCESS_VERSION}"
    return data, labels, loaded.astype(np.int64), data_id


def load_r_peaks(path, *, subjects=None, cache_dir=None, force=False):
    """R peaks of every clip's ECG, aligned on the EEG that :func:`load_preprocessed` keeps.

    The first ECG lead of each whole stimulus goes through
    :func:`physioemo.datasets.features.detect_r_peaks`; peak times are then counted in ECG
    samples (256 Hz) from the first of the last 60 s that the preprocessed EEG keeps
    (negative before it, so a window near the start still has a heart-rate context). Cached
    like :func:`load_preprocessed`: the key covers the file's content hash, the subjects,
    the physioemo and preprocessing versions and this function's name.

    Parameters
    ----------
    path : str | Path
        The DREAMER file.
    subjects : sequence of int | None
        0-based subject indices (default all), as for :func:`load_preprocessed`.
    cache_dir : str | Path | None
        Cache folder (see :func:`load_preprocessed`).
    force : bool
        Recompute and overwrite the entry.

    Returns
    -------
    r_peaks : list of list of ndarray of int64
        ``r_peaks[i][j]``: R-peak ECG samples of clip ``j`` of the ``i``-th subject loaded,
        shape (n_peaks,), increasing. Pass as ``run_protocol(..., ecg=r_peaks)``.
    """
    from .dreamer import ECG_SFREQ, EEG_SFREQ, STIMULUS_SAMPLES, _check_subjects
    from .features import _dreamer_r_peaks

    path = check_path("DREAMER file", path, hint=_WHERE_TO_GET)
    cache_dir = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    params = {"subjects": None if subjects is None else [int(s) for s in subjects],
              "stimulus_samples": STIMULUS_SAMPLES}
    key = cache_key(path, params, memo_dir=cache_dir, function="load_r_peaks")
    entry = cache_dir / f"dreamer-rpeaks-{key[:24]}.npz"
    if not force and entry.is_file():
        try:
            with np.load(entry, allow_pickle=False) as z:
                if str(z["key"]) == key:
                    peaks, offsets, shape = z["peaks"], z["offsets"], tuple(z["shape"])
                    flat = [peaks[a:b] for a, b in zip(offsets[:-1], offsets[1:],
                                                         strict=True)]
                    return [flat[i * shape[1]:(i + 1) * shape[1]] for i in range(shape[0])]
                logger.warning("cache entry %s has a different key; rebuilding", entry)
        except Exception as err:  # corrupt or foreign file: rebuild, never trust it
            logger.warning("cache entry %s is unreadable (%s); rebuilding", entry, err)
    dreamer = load_dreamer(path, lazy=True)
    subjects = _check_subjects(subjects, dreamer.n_subjects)
    found = _dreamer_r_peaks(dreamer, subjects)
    ratio = int(ECG_SFREQ // EEG_SFREQ)
    out = []
    for s in subjects:
        clips = []
        for j, ecg in enumerate(dreamer.subjects[s].ecg_stimulus):
            first = ecg.shape[-1] - STIMULUS_SAMPLES * ratio  # first kept sample
            clips.append(np.asarray(found[s, j], dtype=np.int64) - first)
        out.append(clips)
    del dreamer
    flat = [p for clips in out for p in clips]
    offsets = np.concatenate([[0], np.cumsum([len(p) for p in flat])]).astype(np.int64)
    shape = np.array([len(out), len(out[0]) if out else 0], dtype=np.int64)
    _write_entry(entry, key, peaks=np.concatenate(flat) if flat else np.zeros(0, np.int64),
                 offsets=offsets, shape=shape)
    logger.info("cached DREAMER R peaks in %s", entry)
    return out
