"""Crash-safe EDF+/BDF+ recording.

While recording, samples and annotations go to the recording's journal
(:mod:`physioemo.acquisition.journal`), owned by the recording process through a lock and
flushed and fsync-ed at least once per ``flush_interval_s`` (1 s): after a crash, a power
loss or ``kill -9`` at most the last second is lost, and :func:`recover` turns the journal
into a valid EDF+. On a clean stop the EDF+ is written under a temporary name and renamed
into place only when complete (:func:`~physioemo.acquisition.edf.write_edf`), so a file
at the output path is always a complete recording; then the journal is removed. The
sidecar JSON keeps every annotation in full, with what the EDF+ holds of it.
"""

from __future__ import annotations

import base64
import datetime
import errno
import json
import shutil
import time
from pathlib import Path

import numpy as np

from ..exceptions import DataError, ParameterError
from ..utils._checks import check_number, check_output_path, check_sfreq
from ..utils.config import atomic_write_text
from ..utils.logging import logger
from .edf import NONFINITE_ANNOTATION, PADDING_ANNOTATION, write_edf
from .journal import (
    JOURNAL_SUFFIX,
    JournalWriter,
    discard,
    journal_owner,
    journal_path,
    live_recording_error,
    owned,
    read_journal,
)

__all__ = ["NONFINITE_ANNOTATION", "PADDING_ANNOTATION", "Recorder", "check_output",
           "finalize", "journal_path", "read_journal", "recover", "sidecar_path",
           "write_edf"]


def sidecar_path(path):
    """Return the sidecar JSON path of the recording ``path`` (``FILE.json``)."""
    return Path(path).with_suffix(".json")


def _filetype(path):
    suffix = Path(path).suffix.lower()
    if suffix not in (".edf", ".bdf"):
        raise ParameterError(f"output file {str(path)!r} must end in .edf (EDF+, 16 bit) or "
                             f".bdf (BDF+, 24 bit), got {suffix!r}; rename it.")
    return suffix[1:]


def check_output(path, *, force=False, inputs=()):
    """Check that a recording can be written at ``path`` before the device starts.

    Parameters
    ----------
    path : str | Path
        The output EDF/BDF file.
    force : bool
        Allow replacing an existing file (and a left-over journal), never an input.
    inputs : iterable of str | Path | None
        Files the recording reads (a playback file), which it must never replace.

    Returns
    -------
    path : Path
        The output path.
    """
    path = Path(path).expanduser()
    _filetype(path)
    journal = journal_path(path)
    if journal.exists():
        owner = journal_owner(journal)
        if owner is not None:
            raise live_recording_error(journal, owner)
        if not force:
            raise DataError(f"the journal {str(journal)!r} of a recording that ended "
                            "without closing (crash, power loss or kill; no process owns "
                            f"it) exists; run `physioemo recover {path}` to rebuild that "
                            "recording, or pass --force to discard it.")
    check_output_path(sidecar_path(path), force=force, inputs=inputs, name="--out's sidecar")
    return check_output_path(path, force=force, inputs=inputs)


class Recorder:
    """Write samples and annotations to a crash-safe journal, then to EDF+ (or BDF+).

    Parameters
    ----------
    path : str | Path
        Output file; ``.edf`` writes EDF+ (16 bit), ``.bdf`` writes BDF+ (24 bit).
    ch_names : list of str
        Channel names.
    sfreq : float
        Sampling frequency in Hz (``sfreq`` samples must make a whole number per second).
    physical_min, physical_max : float
        Physical range in ``units`` written to the header; samples outside are clipped
        (and counted in :attr:`n_clipped`).
    units : str
        Physical unit label (``"uV"``).
    force : bool
        Replace an existing output file.
    flush_interval_s : float
        Longest time between two fsync-ed flushes of the journal.
    metadata : dict | None
        Extra JSON-serialisable content for the sidecar (device, profile, settings...).
    equipment : str
        EDF+ equipment field.

    Attributes
    ----------
    n_times : int
        Samples written so far.
    n_clipped : int
        Samples clipped to the physical range.
    """

    def __init__(self, path, ch_names, sfreq, *, physical_min, physical_max, units="uV",
                 force=False, flush_interval_s=1.0, metadata=None, equipment="physioemo"):
        self.path = Path(path)
        self.ch_names = list(ch_names)
        self.sfreq = sfreq
        self.physical_min = physical_min
        self.physical_max = physical_max
        self.units = units
        self.force = force
        self.flush_interval_s = flush_interval_s
        self.metadata = metadata
        self.equipment = equipment
        self.n_times = 0
        self.n_clipped = 0
        self.n_annotations = 0
        self._journal = None

    @property
    def journal(self):
        """The journal folder of this recording."""
        return journal_path(self.path)

    def start(self, start_time=None):
        """Create the journal (owned by this process until :meth:`close`), write its header.

        Parameters
        ----------
        start_time : float | None
            Time of the first sample (seconds since the epoch); defaults to now.

        Returns
        -------
        self : Recorder
        """
        check_sfreq(self.sfreq)
        check_number("flush_interval_s", self.flush_interval_s, low=0,
                     hint="flush at least once per second (flush_interval_s=1.0)")
        lo = check_number("physical_min", self.physical_min)
        hi = check_number("physical_max", self.physical_max)
        if not lo < hi:
            raise ParameterError(f"physical_min={lo} must be below physical_max={hi}; fix "
                                 "the device profile's range.")
        if abs(self.sfreq - round(self.sfreq)) > 1e-9:
            raise ParameterError(f"sfreq={self.sfreq} must be a whole number of Hz to write "
                                 "1-s EDF data records; resample to an integer rate.")
        self.filetype = _filetype(self.path)
        self.path = check_output(self.path, force=self.force)
        if self.journal.exists():  # force=True: discard a left-over journal, never a live one
            discard(self.journal)
        self.start_time = time.time() if start_time is None else float(start_time)
        self._journal = JournalWriter(self.journal).create({
            "ch_names": self.ch_names, "sfreq": float(self.sfreq), "units": self.units,
            "physical_min": lo, "physical_max": hi, "filetype": self.filetype,
            "start_time": self.start_time, "equipment": self.equipment,
            "metadata": self.metadata or {}})
        self._last_flush = time.monotonic()
        self._lo, self._hi = lo, hi
        return self

    def _check_started(self, what):
        if self._journal is None or not self._journal.is_open:
            raise DataError(f"Recorder is not started; call start() before {what}().")

    def write(self, data):
        """Append samples to the journal.

        Parameters
        ----------
        data : ndarray, shape (n_channels, n_times)
            Samples in ``units``.
        """
        self._check_started("write")
        data = np.asarray(data, dtype="<f8")
        if data.ndim != 2 or data.shape[0] != len(self.ch_names):
            raise ParameterError(f"data must have shape ({len(self.ch_names)}, n_times), got "
                                 f"{data.shape}; pass one row per channel.")
        self.n_clipped += int(np.count_nonzero((data < self._lo) | (data > self._hi)))
        self._guard(self._journal.write_samples, data)
        self.n_times += data.shape[1]
        self.flush_if_due()

    def as_stored(self, data):
        """Return ``data`` as the finished file will hold it (clipped and quantised).

        Parameters
        ----------
        data : ndarray, shape (n_channels, n_times)
            Samples in ``units``.

        Returns
        -------
        stored : ndarray of float64, shape (n_channels, n_times)
            What a reader of the EDF+/BDF+ gets (:func:`~.edf.stored_values`).
        """
        from .edf import stored_values

        self._check_started("as_stored")
        return stored_values(data, self._lo, self._hi, self.filetype)

    def annotate(self, onset_s, description, duration_s=0.0, *, origin=None,
                 host_time=None, raw=None):
        r"""Add an annotation (a marker or a quality event) to the journal, in full.

        Parameters
        ----------
        onset_s : float
            Onset in seconds from the first sample.
        description : str
            Text of the annotation (any length, any character).
        duration_s : float
            Duration in seconds (0 for an instant).
        origin : str | None
            Where a marker came from (``"tcp"``, ``"udp"``, ``"lsl"``, ``"key"``).
        host_time : float | None
            When the marker was received (seconds since the epoch).
        raw : bytes | None
            The exact bytes received, when they are not valid UTF-8 (``description`` then
            shows them with ``\xNN`` escapes); kept base64-encoded.
        """
        self._check_started("annotate")
        ann = {"onset": max(0.0, float(onset_s)), "duration": float(duration_s),
               "description": str(description)}
        if origin is not None:
            ann["origin"] = str(origin)
        if host_time is not None:
            ann["host_time"] = float(host_time)
        if raw is not None:
            ann["bytes_base64"] = base64.b64encode(bytes(raw)).decode("ascii")
        self._guard(self._journal.write_annotation, ann)
        self.n_annotations += 1
        self.flush_if_due()

    def flush(self):
        """Flush the journal to disk (fsync)."""
        if self._journal is not None and self._journal.is_open:
            self._guard(self._journal.flush)
            self._last_flush = time.monotonic()

    def flush_if_due(self):
        """Flush (fsync) the journal if ``flush_interval_s`` has passed since the last one.

        Called on every write and by the acquisition loop while no data arrives, so that
        what was written reaches the disk within ``flush_interval_s`` of wall time.
        """
        if self._journal is not None and self._journal.is_open and \
                time.monotonic() - self._last_flush >= self.flush_interval_s:
            self.flush()

    def _guard(self, func, *args):
        try:
            return func(*args)
        except OSError as err:
            kept = self.n_times / float(self.sfreq)
            why = "the disk is full" if err.errno == errno.ENOSPC else (
                err.strerror or str(err))
            raise DataError(f"recording stopped: cannot write {str(self.journal)!r} "
                            f"({why}); the {kept:.1f} s recorded so far are kept; free "
                            f"space or fix permissions, then run `physioemo recover "
                            f"{self.path}` if no EDF was written.") from None

    def close(self, metadata=None):
        """Finish the recording: write the EDF+/BDF+ and its sidecar, remove the journal.

        Parameters
        ----------
        metadata : dict | None
            Content merged into the sidecar (e.g. the telemetry summary).

        Returns
        -------
        path : Path
            The complete recording.
        """
        self._close_files()
        meta = dict(self.metadata or {})
        meta.update(metadata or {})
        try:
            return finalize(self.journal, self.path, metadata=meta, force=True, locked=True)
        finally:
            self.abort()

    def _close_files(self):
        if self._journal is not None and self._journal.is_open:
            err = self._journal.close()
            if err is not None:
                logger.warning("journal %s could not be flushed completely: %s",
                               self.journal, err)

    def abort(self):
        """Close the journal files and release it (kept for :func:`recover`)."""
        if self._journal is not None:
            self._close_files()
            self._journal.release()


def _marker_entry(ann, status):
    entry = dict(ann)
    entry.update(status)
    return entry


def finalize(journal, path, *, metadata=None, force=False, recovered=False, locked=False):
    """Write the EDF+/BDF+ (and sidecar JSON) of a journal, then remove the journal.

    The file is written under a temporary name and renamed into place only when complete.
    The sidecar keeps every annotation of the journal in full (``markers``: those with an
    ``origin``) with what the EDF+ holds of each, the non-finite sample counts and what of
    the journal could not be read.

    Parameters
    ----------
    journal : str | Path
        The journal folder.
    path : str | Path
        The output recording.
    metadata : dict | None
        Content merged into the sidecar.
    force : bool
        Replace an existing output.
    recovered : bool
        Mark the sidecar as rebuilt after a crash.
    locked : bool
        The caller holds the journal's lock (a recorder closing its own journal).

    Returns
    -------
    path : Path
        The complete recording.
    """
    path = Path(path)
    header, data, annotations, problems = read_journal(journal)
    if data.shape[1] == 0:
        raise DataError(f"recording journal {str(journal)!r} holds no samples (the recording "
                        f"stopped before its first sample was stored; {len(annotations)} "
                        "annotations); there is nothing to recover; delete the journal, or "
                        "record again with --force.")
    check_output_path(sidecar_path(path), force=force, name="the sidecar")
    check_output_path(path, force=force, name="output file")
    for problem in problems:
        logger.warning("%s: %s", journal, problem if len(problem) < 300
                       else problem[:300] + "... (in full in the sidecar)")
    n_times = data.shape[1]
    sfreq = header["sfreq"]
    stats = write_edf(path, data, sfreq, header["ch_names"], units=header["units"],
                      physical_min=header["physical_min"],
                      physical_max=header["physical_max"], annotations=annotations,
                      start_time=header["start_time"], equipment=header.get("equipment", ""),
                      filetype=header["filetype"], full_text_at=sidecar_path(path).name)
    from ..utils.config import versions

    entries = [_marker_entry(a, s) for a, s in zip(annotations, stats["annotations"],
                                                     strict=True)]
    sidecar = dict(header.get("metadata") or {})
    sidecar.update(metadata or {})
    sidecar.update({
        "file": path.name, "format": header["filetype"].upper() + "+",
        "ch_names": header["ch_names"], "sfreq": sfreq, "units": header["units"],
        "physical_min": header["physical_min"], "physical_max": header["physical_max"],
        "start_time": datetime.datetime.fromtimestamp(
            header["start_time"], datetime.timezone.utc).isoformat(),
        "start_timestamp": header["start_time"], "n_times": n_times,
        "duration_s": n_times / sfreq, "n_annotations": len(annotations),
        "n_markers": sum("origin" in a for a in annotations),
        "markers": [e for e in entries if "origin" in e],
        "annotations": [e for e in entries if "origin" not in e],
        "edf_annotations": {k: stats[k] for k in ("capacity", "not_stored", "shortened",
                                                  "escaped")},
        "padded_samples": stats["padded"], "clipped_samples": stats["clipped"],
        "nonfinite_samples": stats["nonfinite"], "journal_problems": problems,
        "recovered": bool(recovered),
    })
    sidecar.setdefault("versions", versions())
    atomic_write_text(sidecar_path(path), json.dumps(sidecar, indent=2, default=str))
    if locked:
        shutil.rmtree(journal, ignore_errors=True)
    else:
        discard(journal)
    return path


def recover(path, *, force=False):
    """Rebuild the EDF+ of a recording that crashed, from its journal.

    Parameters
    ----------
    path : str | Path
        The recording's output path (``FILE.edf``) or its journal (``FILE.edf.journal``).
    force : bool
        Replace an existing (incomplete or older) output file.

    Returns
    -------
    path : Path
        The rebuilt recording (it loses at most the last second before the crash).
    """
    path = Path(path)
    if path.name.endswith(JOURNAL_SUFFIX):
        path = path.with_name(path.name[:-len(JOURNAL_SUFFIX)])
    journal = journal_path(path)
    if not journal.is_dir():
        if path.exists():
            raise DataError(f"{str(path)!r} has no journal to recover from "
                            f"({str(journal)!r} does not exist); the recording was closed "
                            "cleanly and needs no recovery.")
        raise DataError(f"no recording journal at {str(journal)!r}; pass the --out path "
                        "of the crashed recording.")
    with owned(journal):  # refuses a recording that is still running
        return finalize(journal, path, force=force, recovered=True, locked=True)
