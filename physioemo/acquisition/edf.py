r"""Write EDF+/BDF+ files atomically, and say exactly what the format could not hold.

EDF+ has limits that a recording can exceed; physioemo never exceeds them silently:

- **Annotations per data record**: at most :data:`EDF_ANNOTATIONS_PER_RECORD` (64) per
  1-s data record on average (edflib packs them in order). When more arrive, the EDF+ keeps
  the first ones in time order and one annotation ``physioemo: N more in sidecar JSON`` at
  the onset of the first one left out.
- **Text length**: at most :data:`EDF_TEXT_BYTES` (40) UTF-8 bytes per annotation; a
  longer text is cut at a character boundary and ends with ``…``.
- **Bytes**: control characters (NUL and the TAL separators 0x14, 0x15 among them) would
  cut or break the annotation, so they are written as ``\xNN``.
- **Non-finite samples**: NaN and ±inf cannot be stored; they are written as 0 and every
  run of them is covered by a :data:`NONFINITE_ANNOTATION` annotation (MNE treats
  descriptions starting with ``BAD`` as bad segments), counted per channel.

:func:`write_edf` returns all of this per annotation, so that the sidecar JSON can keep
every annotation in full with what the EDF+ holds of it.
"""

from __future__ import annotations

import datetime
import errno
import math
import os
import re
from pathlib import Path

import numpy as np

from ..exceptions import DataError
from ..utils.logging import logger

#: Description of the annotation that marks samples added to fill the last data record.
PADDING_ANNOTATION = "physioemo: padding"
#: Description of the annotation that covers samples that were NaN or inf (written as 0).
NONFINITE_ANNOTATION = "BAD physioemo: NaN/inf written as 0"
#: Longest annotation text edflib writes, in UTF-8 bytes.
EDF_TEXT_BYTES = 40
#: Annotations one data record can hold (edflib's limit of annotation signals).
EDF_ANNOTATIONS_PER_RECORD = 64

_CONTROL = re.compile("[\x00-\x1f\x7f]")


def edf_text(description):
    r"""Return the text of ``description`` that fits an EDF+ annotation, and how it changed.

    Parameters
    ----------
    description : str
        The annotation text.

    Returns
    -------
    text : str
        At most :data:`EDF_TEXT_BYTES` UTF-8 bytes, control characters as ``\xNN``.
    status : {"exact", "escaped", "shortened"}
        ``"shortened"`` if the text had to be cut (whether or not it was escaped).
    """
    text = _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", description)
    status = "exact" if text == description else "escaped"
    raw = text.encode("utf-8", "backslashreplace")
    if len(raw) > EDF_TEXT_BYTES:
        text = raw[:EDF_TEXT_BYTES - 3].decode("utf-8", "ignore") + "…"
        status = "shortened"
    return text, status


def _runs(mask):
    """Start and stop (exclusive) of each run of True in a 1-D boolean array."""
    edges = np.flatnonzero(np.diff(np.concatenate([[0], mask.view(np.int8), [0]])))
    return edges.reshape(-1, 2)


def _merge_runs(runs, max_runs):
    """Merge the runs separated by the smallest gaps until at most ``max_runs`` remain."""
    if len(runs) <= max_runs:
        return runs
    gaps = runs[1:, 0] - runs[:-1, 1]
    keep = np.sort(np.argsort(gaps, kind="stable")[len(runs) - max_runs:])
    starts = np.concatenate([[runs[0, 0]], runs[keep + 1, 0]])
    stops = np.concatenate([runs[keep, 1], [runs[-1, 1]]])
    return np.stack([starts, stops], axis=1)


def plan_annotations(annotations, n_records, system=()):
    """Decide what each annotation becomes in an EDF+ of ``n_records`` data records.

    Parameters
    ----------
    annotations : list of dict
        ``onset``, ``duration``, ``description`` of each annotation (markers, events).
    n_records : int
        Data records in the file.
    system : list of dict
        Annotations physioemo adds (padding, non-finite runs); they are always stored.

    Returns
    -------
    written : list of dict
        The annotations to write (``onset``, ``duration``, ``text``).
    status : list of dict
        One per item of ``annotations``: ``edf`` (``"exact"``, ``"escaped"``,
        ``"shortened"`` or ``"not stored"``) and ``edf_text`` when the stored text differs.
    """
    capacity = EDF_ANNOTATIONS_PER_RECORD * n_records
    order = sorted(range(len(annotations)), key=lambda i: float(annotations[i]["onset"]))
    room = capacity - len(system)
    fits = len(order) <= room
    stored = order if fits else order[:max(0, room - 1)]
    written = [{"onset": float(a["onset"]), "duration": float(a.get("duration") or 0),
                "text": edf_text(a["description"])[0]} for a in system]
    status = [{"edf": "not stored"} for _ in annotations]
    for i in stored:
        ann = annotations[i]
        text, how = edf_text(ann["description"])
        if how == "exact" and "bytes_base64" in ann:  # the text shows bytes as \xNN
            how = "escaped"
        written.append({"onset": float(ann["onset"]),
                        "duration": float(ann.get("duration") or 0), "text": text})
        status[i] = {"edf": how} if how == "exact" else {"edf": how, "edf_text": text}
    if not fits:
        first = annotations[order[len(stored)]]
        written.append({"onset": float(first["onset"]), "duration": 0.0,
                        "text": f"physioemo: {len(order) - len(stored)} more in sidecar "
                                "JSON"})
    return written, status


def _edf_start(start_time):
    """Return the start time for the EDF+ header: whole seconds (naive UTC datetime).

    pyedflib (0.1.42) passes the fraction of a second to edflib ten times too large (or
    not at all, from 0.1 s on), and edflib adds it to the annotation onsets at 100-µs
    resolution, so an annotation on the first sample can land before the start, where
    readers (MNE) drop it. The exact start is in the sidecar (``start_timestamp``).
    """
    return datetime.datetime.fromtimestamp(math.floor(start_time), datetime.timezone.utc
                                           ).replace(tzinfo=None)


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


#: Digital range of each file type.
DIGITAL_RANGE = {"edf": (-32768, 32767), "bdf": (-8388608, 8388607)}


def _digital(seg, physical_min, physical_max, dmin, dmax):
    """Clipped physical samples -> the nearest digital values (what the file stores)."""
    gain = (dmax - dmin) / (physical_max - physical_min)
    # round to the nearest digital value (edflib would truncate): the error is at most
    # half a quantisation step
    return np.rint((seg - physical_min) * gain + dmin).astype(np.int32)


def stored_values(data, physical_min, physical_max, filetype="edf"):
    """Return the samples as a reader of the written EDF+/BDF+ will get them.

    Parameters
    ----------
    data : ndarray, shape (n_channels, n_times)
        Samples in the recording's units.
    physical_min, physical_max : float
        Physical range of the file.
    filetype : {"edf", "bdf"}
        16-bit or 24-bit.

    Returns
    -------
    stored : ndarray of float64, shape (n_channels, n_times)
        Clipped to the physical range, quantised to its digital steps, NaN/inf as 0
        (as :func:`write_edf` writes them).
    """
    dmin, dmax = DIGITAL_RANGE[filetype]
    seg = np.array(data, dtype=np.float64)
    seg[~np.isfinite(seg)] = 0.0
    np.clip(seg, physical_min, physical_max, out=seg)
    dig = _digital(seg, physical_min, physical_max, dmin, dmax)
    return (dig - dmin) * ((physical_max - physical_min) / (dmax - dmin)) + physical_min


def write_edf(path, data, sfreq, ch_names, *, physical_min, physical_max, units="uV",
              annotations=(), start_time=None, equipment="", filetype="edf",
              full_text_at=None):
    """Write an EDF+ or BDF+ file atomically (temporary name, then rename).

    A last data record that is not full is padded with its last sample and the padding
    is marked by a :data:`PADDING_ANNOTATION` annotation. What EDF+ cannot hold is stated
    in the returned statistics and in a warning (see the module's description).

    Parameters
    ----------
    path : str | Path
        Output file.
    data : ndarray, shape (n_channels, n_times)
        Samples in ``units``; values outside the physical range are clipped, NaN and inf
        are written as 0 and annotated.
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
    full_text_at : str | None
        Where the complete annotations are kept (named in the warning), e.g. the sidecar.

    Returns
    -------
    stats : dict
        ``padded`` and ``clipped`` sample counts; ``nonfinite`` (``n_values``,
        ``per_channel``, ``spans`` as ``[onset_s, duration_s]``, ``merged``);
        ``annotations``: one ``{"edf": ...}`` status per input annotation (see
        :func:`plan_annotations`); ``not_stored``, ``shortened``, ``escaped`` counts;
        ``capacity`` (annotations the file can hold).
    """
    import pyedflib

    path = Path(path)
    n_channels, n_times = data.shape
    record = int(round(sfreq))
    n_records = max(1, math.ceil(n_times / record))
    padded = n_records * record - n_times
    annotations = list(annotations)
    system = []
    if padded:
        system.append({"onset": n_times / sfreq, "duration": padded / sfreq,
                       "description": PADDING_ANNOTATION})
    bad = ~np.isfinite(data)
    per_channel = bad.sum(axis=1)
    runs = _merge_runs(_runs(bad.any(axis=0)), EDF_ANNOTATIONS_PER_RECORD * n_records // 2)
    spans = [[int(a) / sfreq, int(b - a) / sfreq] for a, b in runs]
    system += [{"onset": o, "duration": d, "description": NONFINITE_ANNOTATION}
               for o, d in spans]
    written, status = plan_annotations(annotations, n_records, system)
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
    try:
        writer = pyedflib.EdfWriter(str(tmp), n_channels, file_type=ftype)
        try:
            # Each data record holds one annotation per annotation signal (edflib allows
            # up to 64 signals); plan_annotations never writes more than that.
            writer.set_number_of_annotation_signals(min(EDF_ANNOTATIONS_PER_RECORD, max(
                1, math.ceil((len(written) + 1) / n_records) + 1)))
            writer.setSignalHeaders(headers)
            writer.setEquipment(equipment[:80])
            if start_time is not None:
                writer.setStartdatetime(_edf_start(start_time))
            block = 60 * record
            for i0 in range(0, n_records * record, block):
                seg = np.array(data[:, i0:i0 + block], dtype=np.float64, order="C")
                seg[bad[:, i0:i0 + block]] = 0.0
                short = min(block, n_records * record - i0) - seg.shape[1]
                if short:
                    last = seg[:, -1:] if seg.shape[1] else np.zeros((n_channels, 1))
                    seg = np.concatenate([seg, np.repeat(last, short, axis=1)], axis=1)
                clipped += int(np.count_nonzero((seg < physical_min) | (seg > physical_max)))
                np.clip(seg, physical_min, physical_max, out=seg)
                dig = _digital(seg, physical_min, physical_max, dmin, dmax)
                writer.writeSamples(list(dig), digital=True)
            for ann in written:
                writer.writeAnnotation(ann["onset"], ann["duration"] or -1, ann["text"])
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
    except BaseException:
        tmp.unlink(missing_ok=True)  # never leave a partial file behind
        raise
    counts = {k: sum(s["edf"] == k for s in status)
              for k in ("not stored", "shortened", "escaped")}
    stats = {"padded": padded, "clipped": clipped,
             "nonfinite": {"n_values": int(per_channel.sum()),
                           "per_channel": {n: int(c) for n, c in zip(ch_names, per_channel,
                                                                     strict=True) if c},
                           "spans": spans, "merged": bool(len(runs) < len(_runs(
                               bad.any(axis=0))))},
             "annotations": status, "not_stored": counts["not stored"],
             "shortened": counts["shortened"], "escaped": counts["escaped"],
             "capacity": EDF_ANNOTATIONS_PER_RECORD * n_records}
    _warn(path, stats, len(annotations), n_records, full_text_at)
    return stats


def _warn(path, stats, n_annotations, n_records, full_text_at):
    """Log exactly what the EDF+ could not hold, and where the full content is."""
    where = f"complete in {full_text_at}" if full_text_at else "not kept anywhere else"
    if stats["not_stored"]:
        logger.warning("%s: %d annotations in %d s of data exceed EDF+'s %d per 1-s data "
                       "record (%d in all); the first %d in time are in the file, %d are "
                       "not (all are %s)", path.name, n_annotations, n_records,
                       EDF_ANNOTATIONS_PER_RECORD, stats["capacity"],
                       n_annotations - stats["not_stored"], stats["not_stored"], where)
    if stats["shortened"]:
        logger.warning("%s: %d annotation texts are longer than EDF+'s %d bytes and were "
                       "shortened in the file (the full texts are %s)", path.name,
                       stats["shortened"], EDF_TEXT_BYTES, where)
    if stats["escaped"]:
        logger.warning("%s: %d annotation texts hold control characters (NUL, tab...) "
                       "written as \\xNN in the file (the exact texts are %s)", path.name,
                       stats["escaped"], where)
    nonfinite = stats["nonfinite"]
    if nonfinite["n_values"]:
        logger.warning("%s: %d sample values were NaN or inf (%s); they are written as 0 "
                       "and covered by %d %r annotations", path.name,
                       nonfinite["n_values"], ", ".join(
                           f"{k}: {v}" for k, v in nonfinite["per_channel"].items()),
                       len(nonfinite["spans"]), NONFINITE_ANNOTATION)
