"""The crash-safe journal of a recording, owned by the process that records.

While recording, samples and annotations go to an append-only journal next to the output
(``FILE.edf.journal/``):

- ``samples.f64``: raw little-endian float64 samples, one sample of every channel after
  the other;
- ``annotations.jsonl``: one JSON object per annotation (``onset``, ``duration``,
  ``description``; markers also carry ``origin``, ``host_time`` and, when the bytes
  received are not valid UTF-8, ``bytes_base64`` with the exact bytes);
- ``header.json`` and its copy ``header.bak.json``, written once at start, each with a
  SHA-256 of its content, so that one damaged copy never costs the samples;
- ``lock``: held (an OS file lock) by the recording process for the recording's whole
  life. A second process detects it: ``--force`` never touches a live recording, and a
  journal whose lock is free belongs to a recording that ended without closing (crash,
  power loss, ``kill -9``) and can be recovered.

The journal appears at its final path only complete with its header and its lock held (it
is built under a temporary name, then renamed), so a journal without a live owner is never
a recording that is just starting.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import math
import os
import shutil
import socket
from pathlib import Path

import numpy as np

from ..exceptions import DataError
from ..utils.config import atomic_write_text

JOURNAL_SUFFIX = ".journal"
JOURNAL_FORMAT = "physioemo-journal-1"

SAMPLES = "samples.f64"
ANNOTATIONS = "annotations.jsonl"
HEADER = "header.json"
HEADER_COPY = "header.bak.json"
LOCK = "lock"

#: Header fields without which the samples cannot be decoded.
_REQUIRED = ("ch_names", "sfreq", "physical_min", "physical_max", "filetype", "start_time",
             "units")


def journal_path(path):
    """Return the journal folder that belongs to the recording ``path``."""
    path = Path(path)
    return path.with_name(path.name + JOURNAL_SUFFIX)


# -- ownership ---------------------------------------------------------------------------------
def _try_lock(fd):
    """Take an exclusive lock on ``fd`` without waiting; return False if another holds it."""
    try:
        if os.name == "nt":  # pragma: no cover - Windows
            import msvcrt

            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        else:
            import fcntl

            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False
    return True


class JournalLock:
    """The lock that makes a process the owner of a journal.

    Parameters
    ----------
    journal : str | Path
        The journal folder (its ``lock`` file is created if missing).
    """

    def __init__(self, journal):
        self.journal = Path(journal)
        self._fd = None

    def acquire(self):
        """Take the lock; return False (and hold nothing) if a live process holds it."""
        fd = os.open(self.journal / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
        if not _try_lock(fd):
            os.close(fd)
            return False
        self._fd = fd
        return True

    def write_owner(self):
        """Write this process's id into the lock file (for other processes' messages)."""
        os.ftruncate(self._fd, 0)
        os.lseek(self._fd, 0, os.SEEK_SET)
        os.write(self._fd, f"{os.getpid()} {socket.gethostname()}\n".encode())

    def release(self):
        """Release the lock (closing the file releases it)."""
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)


def journal_owner(journal):
    """Return who is recording into ``journal`` right now.

    Parameters
    ----------
    journal : str | Path
        The journal folder.

    Returns
    -------
    owner : str | None
        ``"process PID on HOST"`` if a live process holds the journal's lock, ``None`` if
        the lock is free (the recording ended without closing: it can be recovered).
    """
    lock = JournalLock(journal)
    try:
        free = lock.acquire()
    except OSError:  # no lock file could be made (read-only folder): nobody can own it
        return None
    if free:
        lock.release()
        return None
    try:
        pid, _, host = (Path(journal) / LOCK).read_text().strip().partition(" ")
    except OSError:
        pid, host = "", ""
    return f"process {pid or '?'} on {host or 'this machine'}"


def live_recording_error(journal, owner):
    """Return the error for a command that would touch the journal of a live recording."""
    return DataError(f"a recording is in progress into {str(journal)!r} ({owner} holds its "
                     "journal lock); physioemo never touches a live recording, not even with "
                     "--force; choose another --out, or wait until that recording ends.")


@contextlib.contextmanager
def owned(journal):
    """Hold the lock of a journal whose recording ended, or refuse a live one.

    Parameters
    ----------
    journal : str | Path
        The journal folder.

    Yields
    ------
    lock : JournalLock
        The held lock.
    """
    lock = JournalLock(journal)
    try:
        free = lock.acquire()
    except OSError as err:
        raise DataError(f"cannot lock the recording journal {str(journal)!r} "
                        f"({err.strerror or err}); fix the folder's permissions.") from None
    if not free:
        raise live_recording_error(journal, journal_owner(journal) or "another process")
    try:
        yield lock
    finally:
        lock.release()


def discard(journal):
    """Delete the journal of a recording that ended without closing (never a live one)."""
    with owned(journal):
        shutil.rmtree(journal)


# -- writing -----------------------------------------------------------------------------------
def _checksum(header):
    body = {k: v for k, v in header.items() if k != "sha256"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()


class JournalWriter:
    """Create a journal, hold its lock, and append samples and annotations to it.

    Parameters
    ----------
    journal : str | Path
        The journal folder (must not exist).
    """

    def __init__(self, journal):
        self.journal = Path(journal)
        self.lock = None
        self._files = None

    def _open(self, name, mode):
        # One place that opens journal files (tests replace it to simulate a full disk).
        return open(self.journal / name, mode)

    def create(self, header):
        """Build the journal under a temporary name, lock it, then move it into place.

        Parameters
        ----------
        header : dict
            The recording's header (channel names, sfreq, range, start time...).
        """
        header = dict(header, format=JOURNAL_FORMAT,
                      owner={"pid": os.getpid(), "host": socket.gethostname()})
        header["sha256"] = _checksum(header)
        text = json.dumps(header, indent=1, default=str)
        final = self.journal
        tmp = final.with_name(f".{final.name}.tmp{os.getpid()}")
        try:
            tmp.mkdir()
            self.lock = JournalLock(tmp)
            self.lock.acquire()
            self.lock.write_owner()
            atomic_write_text(tmp / HEADER, text)
            atomic_write_text(tmp / HEADER_COPY, text)
            os.rename(tmp, final)  # fails if a journal appeared meanwhile
        except OSError as err:
            if self.lock is not None:
                self.lock.release()
                self.lock = None
            shutil.rmtree(tmp, ignore_errors=True)
            if final.exists():
                raise DataError(f"another recording created {str(final)!r} at the same "
                                "moment; choose another --out.") from None
            raise DataError(f"cannot create the recording journal {str(final)!r}: "
                            f"{err.strerror or err}; choose a writable --out.") from None
        self._files = [self._open(SAMPLES, "ab"), self._open(ANNOTATIONS, "ab")]
        return self

    @property
    def is_open(self):
        """Whether the journal files are open for writing."""
        return self._files is not None

    def write_samples(self, data):
        """Append samples, ``data`` of shape (n_channels, n_times)."""
        self._files[0].write(np.ascontiguousarray(np.asarray(data, "<f8").T).tobytes())

    def write_annotation(self, annotation):
        """Append one annotation (a JSON-serialisable dict) as one line."""
        # ASCII JSON: any text (even a lone surrogate) survives as \uXXXX escapes
        self._files[1].write((json.dumps(annotation) + "\n").encode("ascii"))

    def flush(self):
        """Flush the journal files to disk (fsync); OSError propagates."""
        for fid in self._files or ():
            fid.flush()
            os.fsync(fid.fileno())

    def close(self):
        """Flush and close the journal files (keeps the lock); return the first OSError."""
        files, self._files = self._files or [], None
        first = None
        for fid in files:
            try:
                fid.flush()
                os.fsync(fid.fileno())
            except OSError as err:
                first = first or err
            finally:
                try:
                    fid.close()
                except OSError as err:
                    first = first or err
        return first

    def release(self):
        """Give up ownership (the journal stays, recoverable)."""
        if self.lock is not None:
            self.lock.release()
            self.lock = None


# -- reading -----------------------------------------------------------------------------------
def _number(value):
    return not isinstance(value, bool) and isinstance(value, (int, float)) and \
        math.isfinite(value)


def _header_values(header):
    """Say what is wrong with a header's values (empty string if nothing)."""
    names = header["ch_names"]
    if not isinstance(names, list) or not names or \
            not all(isinstance(n, str) for n in names):
        return f"ch_names {names!r} (expected a non-empty list of names)"
    if not _number(header["sfreq"]) or header["sfreq"] <= 0:
        return f"sfreq {header['sfreq']!r} (expected a positive number)"
    lo, hi = header["physical_min"], header["physical_max"]
    if not (_number(lo) and _number(hi) and lo < hi):
        return f"physical range {lo!r} to {hi!r} (expected min < max)"
    if header["filetype"] not in ("edf", "bdf") or not _number(header["start_time"]):
        return f"filetype {header['filetype']!r} / start_time {header['start_time']!r}"
    return ""


def _read_header(journal):
    problems = []
    for name in (HEADER, HEADER_COPY):
        try:
            header = json.loads((journal / name).read_text())
        except FileNotFoundError:
            problems.append(f"{name} is missing")
            continue
        except (OSError, ValueError) as err:
            problems.append(f"{name} is damaged ({err})")
            continue
        if not isinstance(header, dict):
            problems.append(f"{name} is damaged (not a JSON object)")
            continue
        if header.get("format") != JOURNAL_FORMAT:
            problems.append(f"{name} has format {header.get('format')!r}, expected "
                            f"{JOURNAL_FORMAT!r}")
            continue
        if "sha256" in header and header["sha256"] != _checksum(header):
            problems.append(f"{name} is damaged (its checksum does not match)")
            continue
        missing = [k for k in _REQUIRED if k not in header]
        if missing:
            problems.append(f"{name} lacks {', '.join(missing)}")
            continue
        wrong = _header_values(header)
        if wrong:
            problems.append(f"{name} has {wrong}")
            continue
        return header, problems
    size = (journal / SAMPLES).stat().st_size if (journal / SAMPLES).exists() else 0
    raise DataError(f"recording journal {str(journal)!r} has no readable header ("
                    f"{'; '.join(problems)}); its {size} bytes of samples are kept untouched "
                    "but cannot be decoded without the channel names and sampling rate; "
                    "restore header.json from header.bak.json or a backup, or pass the "
                    "journal of the right recording.")


def _annotation(obj):
    """Check one parsed journal line; return it (cleaned) or raise ValueError saying why."""
    if not isinstance(obj, dict):
        raise ValueError("not a JSON object")
    out = dict(obj)
    for key, default in (("onset", None), ("duration", 0.0)):
        value = obj.get(key, default)
        if not _number(value) or value < 0:
            raise ValueError(f"{key} {value!r} is not a number >= 0")
        out[key] = float(value)
    if not isinstance(obj.get("description"), str):
        raise ValueError(f"description {obj.get('description')!r} is not text")
    if "bytes_base64" in obj:
        try:
            base64.b64decode(obj["bytes_base64"], validate=True)
        except (TypeError, ValueError):
            raise ValueError("bytes_base64 is not base64") from None
    return out


def read_journal(journal):
    """Read a recording journal, keeping everything that can be read.

    Parameters
    ----------
    journal : str | Path
        The ``FILE.edf.journal`` folder.

    Returns
    -------
    header : dict
        The header written at start (from ``header.bak.json`` if ``header.json`` is
        damaged).
    data : ndarray, shape (n_channels, n_times)
        Every complete sample in the journal (a torn last sample is left out).
    annotations : list of dict
        Every readable annotation line, in journal order.
    problems : list of str
        What could not be read (damaged header copy, torn sample, unreadable annotation
        lines with their text), empty for an intact journal.
    """
    journal = Path(journal)
    header, problems = _read_header(journal)
    n_channels = len(header["ch_names"])
    path = journal / SAMPLES
    raw = np.fromfile(path, dtype="<u1") if path.exists() else np.empty(0, "<u1")
    n_times = raw.size // (8 * n_channels)
    torn = raw.size - n_times * 8 * n_channels
    if torn:
        problems.append(f"{SAMPLES} ends with {torn} bytes of a torn sample (left out)")
    data = raw[:n_times * 8 * n_channels].view("<f8").reshape(n_times, n_channels).T
    annotations = []
    path = journal / ANNOTATIONS
    try:
        lines = path.read_bytes().split(b"\n") if path.exists() else []
    except OSError as err:
        problems.append(f"{ANNOTATIONS} cannot be read ({err.strerror or err})")
        lines = []
    for i, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            annotations.append(_annotation(json.loads(line.decode("utf-8"))))
        except ValueError as err:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
            text = line.decode("utf-8", "backslashreplace")
            why = "torn (the recording stopped while writing it)" if i == len(lines) \
                else str(err).split(": line 1")[0]
            problems.append(f"{ANNOTATIONS} line {i} unreadable ({why}): {text}")
    return header, data, annotations, problems
