"""Crash-safe EDF+/BDF+ recording.

While recording, samples go to an append-only journal next to the output
(``FILE.edf.journal/``): raw float64 samples, one JSON line per annotation, and a header
written once at start. The journal is flushed and fsync-ed at least once per
``flush_interval_s`` (1 s), so after a crash, a power loss or ``kill -9`` at most the last
second is lost; :func:`recover` turns the journal into a valid EDF+. On a clean stop the
EDF+ is written under a temporary name and renamed into place only when complete, so a
file at the output path is always a complete recording; then the journal is removed.
"""

from __future__ import annotations

import datetime
import errno
import json
import math
import os
import shutil
import time
from pathlib import Path

import numpy as np

from ..exceptions import DataError, ParameterError
from ..utils._checks import check_number, check_output_path, check_sfreq
from ..utils.config import atomic_write_text
from ..utils.logging import logger

JOURNAL_SUFFIX = ".journal"
JOURNAL_FORMAT = "physioemo-journal-1"
#: Description of the annotation that marks samples added to fill the last data record.
PADDING_ANNOTATION = "physioemo: padding"

_SAMPLES = "samples.f64"
_ANNOTATIONS = "annotations.jsonl"
_HEADER = "header.json"


def journal_path(path):
    """Return the journal folder that belongs to the recording ``path``."""
    path = Path(path)
    return path.with_name(path.name + JOURNAL_SUFFIX)


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
    if journal.exists() and not force:
        raise DataError(f"an unrecovered recording journal exists at {str(journal)!r}; a "
                        f"crashed recording must be rebuilt before it is overwritten; run "
                        f"`physioemo recover {path}` or pass --force to discard it.")
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
        self._files = None

    @property
    def journal(self):
        """The journal folder of this recording."""
        return journal_path(self.path)

    def _open(self, name, mode):
        # One place that opens journal files (tests replace it to simulate a full disk).
        return open(self.journal / name, mode)

    def start(self, start_time=None):
        """Create the journal and write its header.

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
        if self.journal.exists():  # force=True: discard a left-over journal
            shutil.rmtree(self.journal)
        self.start_time = time.time() if start_time is None else float(start_time)
        header = {"format": JOURNAL_FORMAT, "ch_names": self.ch_names,
                  "sfreq": float(self.sfreq), "units": self.units,
                  "physical_min": lo, "physical_max": hi, "filetype": self.filetype,
                  "start_time": self.start_time, "equipment": self.equipment,
                  "metadata": self.metadata or {}}
        try:
            self.journal.mkdir()
            atomic_write_text(self.journal / _HEADER, json.dumps(header, indent=1,
                                                                 default=str))
            self._files = [self._open(_SAMPLES, "ab"), self._open(_ANNOTATIONS, "a")]
        except OSError as err:
            raise DataError(f"cannot create the recording journal {str(self.journal)!r}: "
                            f"{err.strerror or err}; choose a writable --out.") from None
        self._last_flush = time.monotonic()
        self._lo, self._hi = lo, hi
        return self

    def write(self, data):
        """Append samples to the journal.

        Parameters
        ----------
        data : ndarray, shape (n_channels, n_times)
            Samples in ``units``.
        """
        if self._files is None:
            raise DataError("Recorder is not started; call start() before write().")
        data = np.asarray(data, dtype="<f8")
        if data.ndim != 2 or data.shape[0] != len(self.ch_names):
            raise ParameterError(f"data must have shape ({len(self.ch_names)}, n_times), got "
                                 f"{data.shape}; pass one row per channel.")
        self.n_clipped += int(np.count_nonzero((data < self._lo) | (data > self._hi)))
        self._guard(self._files[0].write, np.ascontiguousarray(data.T).tobytes())
        self.n_times += data.shape[1]
        self.flush_if_due()

    def annotate(self, onset_s, description, duration_s=0.0):
        """Add an annotation (a marker or a quality event).

        Parameters
        ----------
        onset_s : float
            Onset in seconds from the first sample.
        description : str
            Text of the annotation.
        duration_s : float
            Duration in seconds (0 for an instant).
        """
        if self._files is None:
            raise DataError("Recorder is not started; call start() before annotate().")
        line = json.dumps({"onset": max(0.0, float(onset_s)),
                           "duration": float(duration_s), "description": str(description)})
        self._guard(self._files[1].write, line + "\n")
        self.n_annotations += 1
        self.flush_if_due()

    def flush(self):
        """Flush the journal to disk (fsync)."""
        if self._files is None:
            return
        for fid in self._files:
            self._guard(fid.flush)
            self._guard(os.fsync, fid.fileno())
        self._last_flush = time.monotonic()

    def flush_if_due(self):
        """Flush (fsync) the journal if ``flush_interval_s`` has passed since the last one.

        Called on every write and by the acquisition loop while no data arrives, so that
        what was written reaches the disk within ``flush_interval_s`` of wall time.
        """
        if self._files is not None and \
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
        self.abort()
        meta = dict(self.metadata or {})
        meta.update(metadata or {})
        return finalize(self.journal, self.path, metadata=meta, force=True)

    def abort(self):
        """Close the journal files and keep the journal (for :func:`recover`)."""
        if self._files is None:
            return
        files, self._files = self._files, None
        errors = []
        for fid in files:
            try:
                fid.flush()
                os.fsync(fid.fileno())
            except OSError as err:
                errors.append(err)
            finally:
                try:
                    fid.close()
                except OSError as err:
                    errors.append(err)
        if errors:
            logger.warning("journal %s could not be flushed completely: %s", self.journal,
                           errors[0])


def read_journal(journal):
    """Read a recording journal.

    Parameters
    ----------
    journal : str | Path
        The ``FILE.edf.journal`` folder.

    Returns
    -------
    header : dict
        The header written at start.
    data : ndarray, shape (n_channels, n_times)
        Every complete sample in the journal (a torn last sample is dropped).
    annotations : list of dict
        ``onset``, ``duration``, ``description`` of every complete annotation line.
    """
    journal = Path(journal)
    try:
        header = json.loads((journal / _HEADER).read_text())
    except (OSError, ValueError) as err:
        raise DataError(f"recording journal {str(journal)!r} has no readable header "
                        f"({err}); it cannot be recovered; check the path.") from None
    if header.get("format") != JOURNAL_FORMAT:
        raise DataError(f"{str(journal)!r} is not a physioemo journal (format "
                        f"{header.get('format')!r}, expected {JOURNAL_FORMAT!r}); pass the "
                        "recording's .edf path.")
    n_channels = len(header["ch_names"])
    raw = np.fromfile(journal / _SAMPLES, dtype="<f8") if (journal / _SAMPLES).exists() \
        else np.empty(0)
    n_times = raw.size // n_channels
    data = raw[:n_times * n_channels].reshape(n_times, n_channels).T
    annotations = []
    path = journal / _ANNOTATIONS
    if path.exists():
        for line in path.read_text(errors="replace").splitlines():
            try:
                annotations.append(json.loads(line))
            except ValueError:  # a torn last line after a crash
                continue
    return header, data, annotations


def finalize(journal, path, *, metadata=None, force=False, recovered=False):
    """Write the EDF+/BDF+ (and sidecar JSON) of a journal, then remove the journal.

    The file is written under a temporary name and renamed into place only when complete.

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

    Returns
    -------
    path : Path
        The complete recording.
    """
    path = Path(path)
    header, data, annotations = read_journal(journal)
    check_output_path(sidecar_path(path), force=force, name="the sidecar")
    check_output_path(path, force=force, name="output file")
    n_times = data.shape[1]
    sfreq = header["sfreq"]
    stats = write_edf(path, data, sfreq, header["ch_names"], units=header["units"],
                      physical_min=header["physical_min"],
                      physical_max=header["physical_max"], annotations=annotations,
                      start_time=header["start_time"], equipment=header.get("equipment", ""),
                      filetype=header["filetype"])
    from ..utils.config import versions

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
        "padded_samples": stats["padded"], "clipped_samples": stats["clipped"],
        "annotations_not_in_file": stats["dropped_annotations"],
        "recovered": bool(recovered),
    })
    sidecar.setdefault("versions", versions())
    atomic_write_text(sidecar_path(path), json.dumps(sidecar, indent=2, default=str))
    shutil.rmtree(journal, ignore_errors=True)
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
    return finalize(journal, path, force=force, recovered=True)


def _fsync_dir(folder):
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_edf(path, data, sfreq, ch_names, *, physical_min, physical_max, units="uV",
              annotations=(), start_time=None, equipment="", filetype="edf"):
    """Write an EDF+ or BDF+ file atomically (temporary name, then rename).

    A last data record that is not full is padded with its last sample and the padding
    is marked by a :data:`PADDING_ANNOTATION` annotation.

    Parameters
    ----------
    path : str | Path
        Output file.
    data : ndarray, shape (n_channels, n_times)
        Samples in ``units``; values outside the physical range are clipped.
    sfreq : float
        Sampling frequency in Hz (whole number).
    ch_names : list of str
        Channel labels.
    physical_min, physical_max : float
        Physical range in ``units``.
    units : str
        Unit label.
    annotations : iterable of dict
        ``onset`` (s), ``duration`` (s) and ``description`` of each annotation.
    start_time : float | None
        Time of the first sample in seconds since the epoch (UTC).
    equipment : str
        EDF+ equipment field.
    filetype : {"edf", "bdf"}
        EDF+ (16 bit) or BDF+ (24 bit).

    Returns
    -------
    stats : dict
        ``padded`` and ``clipped`` sample counts, ``dropped_annotations`` (annotations
        beyond the 64-per-data-record capacity of EDF+ writers).
    """
    import pyedflib

    path = Path(path)
    n_channels, n_times = data.shape
    record = int(round(sfreq))
    n_records = max(1, math.ceil(n_times / record))
    padded = n_records * record - n_times
    annotations = list(annotations)
    if padded:
        annotations.append({"onset": n_times / sfreq, "duration": padded / sfreq,
                            "description": PADDING_ANNOTATION})
    if filetype == "bdf":
        ftype, dmin, dmax = pyedflib.FILETYPE_BDFPLUS, -8388608, 8388607
    else:
        ftype, dmin, dmax = pyedflib.FILETYPE_EDFPLUS, -32768, 32767
    def _short(x):  # EDF header fields have 8 characters: write -187500, not -187500.0
        return int(x) if float(x).is_integer() else float(x)

    headers = [{"label": name[:16], "dimension": units[:8], "sample_frequency": sfreq,
                "physical_min": _short(physical_min), "physical_max": _short(physical_max),
                "digital_min": dmin, "digital_max": dmax, "transducer": "",
                "prefilter": ""} for name in ch_names]
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    clipped = 0
    dropped_annotations = 0
    try:
        writer = pyedflib.EdfWriter(str(tmp), n_channels, file_type=ftype)
        try:
            # Each data record holds one annotation per annotation signal (edflib allows
            # up to 64 signals); more than that cannot be stored in the file.
            n_annot = min(64, max(1, math.ceil((len(annotations) + 1) / n_records) + 1))
            capacity = n_annot * n_records
            if len(annotations) > capacity:
                logger.warning("%s: %d annotations do not fit in %d s of EDF+ (at most 64 "
                               "per second); the first %d are kept (all are in the sidecar)",
                               path.name, len(annotations), n_records, capacity)
                dropped_annotations = len(annotations) - capacity
                annotations = annotations[:capacity]
            writer.set_number_of_annotation_signals(n_annot)
            writer.setSignalHeaders(headers)
            writer.setEquipment(equipment[:80])
            if start_time is not None:
                writer.setStartdatetime(datetime.datetime.fromtimestamp(
                    start_time, datetime.timezone.utc).replace(tzinfo=None))
            block = 60 * record
            gain = (dmax - dmin) / (physical_max - physical_min)
            for i0 in range(0, n_records * record, block):
                seg = np.array(data[:, i0:i0 + block], dtype=np.float64, order="C")
                short = min(block, n_records * record - i0) - seg.shape[1]
                if short:
                    last = seg[:, -1:] if seg.shape[1] else np.zeros((n_channels, 1))
                    seg = np.concatenate([seg, np.repeat(last, short, axis=1)], axis=1)
                clipped += int(np.count_nonzero((seg < physical_min) | (seg > physical_max)))
                np.clip(seg, physical_min, physical_max, out=seg)
                # round to the nearest digital value (edflib would truncate): the error is
                # at most half a quantisation step
                dig = np.rint((seg - physical_min) * gain + dmin).astype(np.int32)
                writer.writeSamples(list(dig), digital=True)
            for ann in annotations:
                duration = float(ann["duration"]) if ann.get("duration") else -1
                writer.writeAnnotation(float(ann["onset"]), duration, str(ann["description"]))
        finally:
            writer.close()
        with open(tmp, "rb+") as fid:
            os.fsync(fid.fileno())
        os.replace(tmp, path)
        _fsync_dir(path.parent)  # the rename itself must survive a power loss
    except OSError as err:
        tmp.unlink(missing_ok=True)
        why = "the disk is full" if err.errno == errno.ENOSPC else (err.strerror or str(err))
        raise DataError(f"cannot write {str(path)!r} ({why}); the journal is kept; free "
                        f"space or fix permissions, then run `physioemo recover {path}`."
                        ) from None
    return {"padded": padded, "clipped": clipped, "dropped_annotations": dropped_annotations}
