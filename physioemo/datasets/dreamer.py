"""The DREAMER data set: constants, loader and the HiSTN preprocessing.

DREAMER (Katsigiannis & Ramzan, "DREAMER: A Database for Emotion Recognition Through EEG
and ECG Signals From Wireless Low-cost Off-the-Shelf Devices", IEEE JBHI 22(1), 2018) is
one MATLAB file, ``DREAMER.mat``, distributed by its authors on request. physioemo never
downloads it: point it at your copy with ``--dreamer PATH`` or ``PHYSIOEMO_DREAMER_PATH``.
Generated stand-ins (:func:`physioemo.datasets.make_synthetic_dreamer`) have exactly the
same layout and are read by exactly the same code.

The file is parsed once with :func:`scipy.io.loadmat` (MATLAB v5/v7). With ``lazy=True``
the samples of an uncompressed file are not read at all: every array is a read-only
:class:`numpy.memmap` view into the file, found by walking the MAT v5 element tags, so a
subject's clips are paged in only when used.
"""

from __future__ import annotations

import os
import struct

import numpy as np

from ..exceptions import DataError, ParameterError
from ..utils._checks import check_option, check_path
from ..utils.logging import logger

#: The 14 Emotiv EPOC electrodes in file (column) order; it runs round the head.
EEG_CHANNELS = ("AF3", "F7", "F3", "FC5", "T7", "P7", "O1",
                "O2", "P8", "T8", "FC6", "F4", "F8", "AF4")
#: EEG sampling frequency in Hz.
EEG_SFREQ = 128
#: ECG sampling frequency in Hz (two leads).
ECG_SFREQ = 256
#: Number of ECG leads.
N_ECG_CHANNELS = 2
#: Number of subjects and film clips in the real file.
N_SUBJECTS = 23
N_CLIPS = 18
#: Self-report dimensions, in the order of the rating columns.
DIMENSIONS = ("valence", "arousal", "dominance")
#: Ratings are integers in this inclusive range; class = rating - 1.
RATING_RANGE = (1, 5)
#: Length of each pre-clip neutral baseline: 61 s of EEG.
BASELINE_SAMPLES = 61 * EEG_SFREQ
#: 0-based [start, stop) of the middle 10 s of the baseline (histn-spec section 1).
BASELINE_MIDDLE = (3264, 4544)
#: The last 60 s of each stimulus are kept (histn-spec section 1).
STIMULUS_SAMPLES = 60 * EEG_SFREQ
#: Shortest and longest stimulus in DREAMER, seconds (mean about 199 s).
STIMULUS_SECONDS_RANGE = (65.0, 393.0)
#: Environment variable naming the DREAMER file when no path is given.
ENV_VAR = "PHYSIOEMO_DREAMER_PATH"
#: Mean self-reported valence and arousal per clip (clips 1..18) in the real data.
CLIP_MEAN_RATINGS = {
    "valence": (3.17, 3.04, 4.57, 2.04, 3.22, 2.70, 4.52, 1.35, 1.39,
                2.17, 3.96, 3.96, 4.39, 2.35, 2.48, 3.65, 1.52, 2.65),
    "arousal": (2.26, 3.00, 3.83, 4.26, 3.70, 3.83, 3.17, 3.96, 3.00,
                3.30, 1.96, 2.61, 3.70, 2.22, 3.09, 3.35, 3.00, 3.91),
}

_ECG_RATIO = ECG_SFREQ // EEG_SFREQ
_SCORE_FIELDS = ("ScoreValence", "ScoreArousal", "ScoreDominance")
_WHERE_TO_GET = ("DREAMER is distributed by its authors on request (Katsigiannis & Ramzan "
                 "2018, https://zenodo.org/record/546113); put DREAMER.mat somewhere and "
                 f"pass --dreamer PATH or set {ENV_VAR}=PATH (a stand-in with the same layout: "
                 "physioemo synth-dreamer --out PATH)")
_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"


class DreamerSubject:
    """One DREAMER participant: 18 clips of EEG and ECG with self-reports.

    Parameters
    ----------
    eeg_baseline : list of ndarray, shape (14, 7808)
        Pre-clip neutral baselines, one per clip.
    eeg_stimulus : list of ndarray, shape (14, M_j)
        EEG recorded during clip ``j``.
    ecg_baseline : list of ndarray, shape (2, 15616)
        ECG baselines.
    ecg_stimulus : list of ndarray, shape (2, 2 * M_j)
        ECG during clip ``j``.
    ratings : ndarray of int64, shape (n_clips, 3)
        Valence, arousal and dominance, integers 1..5.
    age : str
        Age as stored in the file.
    gender : str
        Gender as stored in the file.
    index : int
        0-based position in the file.

    Notes
    -----
    Arrays are channels-first views of the file's ``(n_times, n_channels)`` matrices; they
    are float64 and, for ``lazy=True``, read-only memory maps.
    """

    def __init__(self, eeg_baseline, eeg_stimulus, ecg_baseline, ecg_stimulus, ratings,
                 age, gender, index):
        self.eeg_baseline = eeg_baseline
        self.eeg_stimulus = eeg_stimulus
        self.ecg_baseline = ecg_baseline
        self.ecg_stimulus = ecg_stimulus
        self.ratings = ratings
        self.age = age
        self.gender = gender
        self.index = index

    @property
    def n_clips(self):
        """Number of clips."""
        return len(self.eeg_stimulus)

    def __repr__(self):
        secs = [x.shape[-1] / EEG_SFREQ for x in self.eeg_stimulus]
        return (f"<DreamerSubject {self.index + 1}: {self.n_clips} clips, "
                f"{min(secs):.0f}-{max(secs):.0f} s, age {self.age}, {self.gender}>")


class Dreamer:
    """A loaded DREAMER file (see :func:`load_dreamer`).

    Attributes
    ----------
    path : Path
        The file read.
    eeg_sfreq, ecg_sfreq : float
        Sampling frequencies in Hz as stored in the file.
    eeg_channels : tuple of str
        The 14 electrode names in file order.
    subjects : list of DreamerSubject
        Participants in file order.
    lazy : bool
        Whether sample arrays are memory maps into the file.
    info : dict
        The file's string fields (Disclaimer, Provider, Version, Acknowledgement).
    """

    def __init__(self, path, eeg_sfreq, ecg_sfreq, eeg_channels, subjects, *, lazy=False,
                 info=None):
        self.path = path
        self.eeg_sfreq = eeg_sfreq
        self.ecg_sfreq = ecg_sfreq
        self.eeg_channels = eeg_channels
        self.subjects = subjects
        self.lazy = lazy
        self.info = info or {}

    @property
    def n_subjects(self):
        """Number of subjects."""
        return len(self.subjects)

    @property
    def n_clips(self):
        """Number of clips per subject."""
        return self.subjects[0].n_clips if self.subjects else 0

    @property
    def ratings(self):
        """Ratings of every subject, int64 array of shape (n_subjects, n_clips, 3)."""
        return np.stack([s.ratings for s in self.subjects])

    def __repr__(self):
        return (f"<Dreamer {self.path.name}: {self.n_subjects} subjects x {self.n_clips} clips,"
                f" EEG {len(self.eeg_channels)} ch @ {self.eeg_sfreq:g} Hz, ECG @ "
                f"{self.ecg_sfreq:g} Hz{', lazy' if self.lazy else ''}>")


# ----------------------------------------------------------------------------- loading

def load_dreamer(path=None, *, lazy=False):
    """Read a DREAMER file (the real one or a generated stand-in).

    Parameters
    ----------
    path : str | Path | None
        The ``DREAMER.mat`` file; ``None`` reads the ``PHYSIOEMO_DREAMER_PATH`` environment
        variable.
    lazy : bool
        If True, do not read samples: each array is a read-only memory map into the file
        (uncompressed MAT v5 files only, as written by ``scipy.io.savemat`` and by MATLAB's
        ``save -v6``). Structure, shapes and ratings are still validated; NaNs are found
        when the samples are used (:func:`histn_preprocess` checks them). A compressed file
        falls back to an eager read with a log message.

    Returns
    -------
    dreamer : Dreamer
        The parsed file; EEG arrays are ``(14, n_times)``, ECG ``(2, n_times)``.

    Raises
    ------
    ParameterError
        No path given and the environment variable is unset.
    DataError
        Missing, non-MATLAB, truncated, MATLAB v7.3 or wrongly laid-out file; shapes,
        ratings or NaNs that do not match DREAMER (the message names subject and clip,
        1-based).
    """
    if path is None and not os.environ.get(ENV_VAR):
        raise ParameterError(f"no DREAMER file given: pass --dreamer PATH (Python: "
                             f"load_dreamer(path)) or set {ENV_VAR}; {_WHERE_TO_GET}.")
    path = check_path("DREAMER file", path, env_var=ENV_VAR, hint=_WHERE_TO_GET)
    if path.is_dir():
        raise DataError(f"DREAMER file {str(path)!r} is a directory; pass the path of "
                        "DREAMER.mat itself.")
    kind = _sniff(path)
    if lazy and kind == "v5-compressed":
        logger.info("%s is a compressed MAT file: samples cannot be memory-mapped, reading it "
                    "eagerly (re-save it uncompressed, e.g. MATLAB save -v6, for lazy access)",
                    path.name)
        lazy = False
    if lazy:
        root = _V5Walker(path).read_variable("DREAMER")
    else:
        root = _loadmat(path)
    return _parse(root, path, lazy=lazy)


def _sniff(path):
    """Classify the file from its header; raise DataError for what we cannot read."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(136)
        hdf = b""
        if size >= 520:
            f.seek(512)
            hdf = f.read(8)
    if head.startswith(_HDF5_MAGIC) or hdf == _HDF5_MAGIC:
        raise DataError(
            f"{str(path)!r} is a MATLAB v7.3 (HDF5) file; physioemo reads the v5/v7 layout "
            "that DREAMER is distributed in; convert it in MATLAB or Octave with "
            "`load('DREAMER.mat'); save('DREAMER_v7.mat', 'DREAMER', '-v7')` and pass the "
            "new file.")
    if len(head) < 128 or not head[:116].lstrip().startswith(b"MATLAB 5.0 MAT-file"):
        what = "is empty" if size == 0 else "has no MATLAB 5.0 header"
        raise DataError(f"{str(path)!r} is not a MATLAB file: it {what} ({size} bytes); "
                        f"expected DREAMER.mat (MATLAB v5/v7); {_WHERE_TO_GET}.")
    endian = "<" if head[126:128] == b"IM" else ">"
    if len(head) < 136:
        raise DataError(f"{str(path)!r} is truncated: it holds only the {size}-byte MATLAB "
                        "header and no variables; re-copy or re-download the file.")
    dtype, nbytes = struct.unpack(endian + "II", head[128:136])
    if 128 + 8 + nbytes > size:
        raise DataError(f"{str(path)!r} is truncated: its first variable needs "
                        f"{128 + 8 + nbytes} bytes but the file has {size}; re-copy or "
                        "re-download the file.")
    return "v5-compressed" if dtype == 15 else "v5"


def _loadmat(path):
    import scipy.io

    try:
        mat = scipy.io.loadmat(path, variable_names=["DREAMER"])
    except MemoryError:
        raise
    except Exception as err:  # scipy raises ValueError, TypeError, OSError, zlib.error...
        raise DataError(f"cannot parse {str(path)!r} as a MATLAB file ({type(err).__name__}: "
                        f"{err}); the file is probably truncated or corrupt; re-copy it.") \
            from None
    if "DREAMER" not in mat:
        raise DataError(f"{str(path)!r} has no variable 'DREAMER'; expected the DREAMER.mat "
                        f"layout (one struct named DREAMER); {_WHERE_TO_GET}.")
    return mat["DREAMER"]


# The parser below works on the default ``loadmat`` representation: a struct is a
# structured ndarray of shape (1, 1), a cell is an object ndarray, a matrix an ndarray. The
# lazy walker builds the same representation with memory maps for the numeric leaves.

def _struct(value, where):
    if not (isinstance(value, np.ndarray) and value.dtype.names is not None):
        raise DataError(f"{where} must be a MATLAB struct, got {_describe(value)}; the file "
                        f"does not have the DREAMER layout; {_WHERE_TO_GET}.")
    if value.size != 1:
        raise DataError(f"{where} must be a 1x1 struct, got a struct array of shape "
                        f"{value.shape}; the file does not have the DREAMER layout.")
    return value.reshape(-1)[0]


def _field(rec, name, where):
    names = rec.dtype.names
    if name not in names:
        raise DataError(f"{where} has no field {name!r} (it has {', '.join(names)}); the file "
                        f"does not have the DREAMER layout; {_WHERE_TO_GET}.")
    return rec[name]


def _cell(value, where, n=None):
    if not (isinstance(value, np.ndarray) and value.dtype == object):
        raise DataError(f"{where} must be a MATLAB cell array, got {_describe(value)}; the "
                        "file does not have the DREAMER layout.")
    flat = value.reshape(-1, order="F")
    if n is not None and flat.size != n:
        raise DataError(f"{where} must hold {n} entries, got {flat.size} (shape "
                        f"{value.shape}); the file does not have the DREAMER layout.")
    return flat


def _describe(value):
    if isinstance(value, np.ndarray):
        return f"an array of shape {value.shape} and dtype {value.dtype}"
    return f"a {type(value).__name__}"


def _text(value):
    if isinstance(value, np.ndarray):
        if value.size == 0:
            return ""
        if value.dtype.kind in "US":
            return str(value.reshape(-1)[0]).strip()
        if value.dtype.kind in "iuf" and value.size == 1:
            v = value.reshape(-1)[0]
            return str(int(v)) if float(v).is_integer() else str(v)
        if value.dtype == object:
            return _text(value.reshape(-1)[0])
    return str(value)


def _scalar(value, where):
    arr = np.asarray(value)
    if arr.dtype.kind not in "iuf" or arr.size != 1:
        raise DataError(f"{where} must be a number, got {_describe(value)}; the file does not "
                        "have the DREAMER layout.")
    return float(arr.reshape(-1)[0])


def _matrix(value, where, n_cols, n_rows=None, rows_hint=""):
    """Check a (n_times, n_channels) matrix and return it channels-first, float64."""
    if not (isinstance(value, np.ndarray) and value.dtype.kind in "iuf"):
        raise DataError(f"{where} must be a numeric matrix, got {_describe(value)}; the file "
                        "does not have the DREAMER layout.")
    if value.ndim != 2 or value.shape[1] != n_cols or (n_rows is not None
                                                        and value.shape[0] != n_rows):
        rows = n_rows if n_rows is not None else "n_times"
        raise DataError(f"{where} has shape {value.shape}; expected ({rows}, {n_cols}) "
                        f"(time x channels{rows_hint}); the file does not have the DREAMER "
                        "layout or was transposed.")
    if value.dtype != np.float64:  # MATLAB may store integer-valued doubles as ints
        value = value.astype(np.float64)
    return value.T


def _check_finite(arr, where):
    # A sum is cheaper than isfinite().all() on large arrays and propagates NaN/inf; only
    # a non-finite sum (or an overflow) triggers the exact check.
    if np.isfinite(np.add.reduce(arr, axis=None)):
        return
    bad = ~np.isfinite(arr)
    if bad.any():
        ch, t = np.unravel_index(int(np.argmax(bad)), arr.shape)
        raise DataError(f"{where} contains {int(bad.sum())} NaN or infinite sample(s) (first at "
                        f"channel {ch}, sample {t}); DREAMER has none; the file is corrupt or "
                        "was edited: re-copy it, or interpolate those samples.")


def _parse(root, path, *, lazy):
    top = _struct(root, "DREAMER")
    eeg_sfreq = _scalar(_field(top, "EEG_SamplingRate", "DREAMER"), "DREAMER.EEG_SamplingRate")
    ecg_sfreq = _scalar(_field(top, "ECG_SamplingRate", "DREAMER"), "DREAMER.ECG_SamplingRate")
    if (eeg_sfreq, ecg_sfreq) != (EEG_SFREQ, ECG_SFREQ):
        raise DataError(f"DREAMER sampling rates are EEG {eeg_sfreq:g} Hz and ECG "
                        f"{ecg_sfreq:g} Hz; expected {EEG_SFREQ} and {ECG_SFREQ} Hz as in "
                        "DREAMER; the file is not DREAMER.")
    electrodes = _cell(_field(top, "EEG_Electrodes", "DREAMER"), "DREAMER.EEG_Electrodes",
                       len(EEG_CHANNELS))
    channels = tuple(_text(e) for e in electrodes)
    if channels != EEG_CHANNELS:
        raise DataError(f"DREAMER.EEG_Electrodes is {channels}; expected {EEG_CHANNELS} in "
                        "this order; the file is not DREAMER or its columns were reordered.")
    data = _cell(_field(top, "Data", "DREAMER"), "DREAMER.Data")
    if "noOfSubjects" in top.dtype.names:
        n_declared = _scalar(top["noOfSubjects"], "DREAMER.noOfSubjects")
        if n_declared != data.size:
            raise DataError(f"DREAMER.noOfSubjects is {n_declared:g} but DREAMER.Data holds "
                            f"{data.size} subjects; the file is inconsistent (truncated or "
                            "edited); re-copy it.")
    n_clips = None
    if "noOfVideoSequences" in top.dtype.names:
        n_clips = int(_scalar(top["noOfVideoSequences"], "DREAMER.noOfVideoSequences"))
    info = {k: _text(top[k]) for k in ("Disclaimer", "Provider", "Version", "Acknowledgement")
            if k in top.dtype.names}
    subjects = []
    for s, value in enumerate(data):
        subjects.append(_parse_subject(value, s, n_clips, check_values=not lazy))
        n_clips = subjects[-1].n_clips
    if not subjects:
        raise DataError(f"DREAMER.Data in {str(path)!r} holds no subjects; the file is empty "
                        "or truncated; re-copy it.")
    return Dreamer(path, eeg_sfreq, ecg_sfreq, channels, subjects, lazy=lazy, info=info)


def _parse_subject(value, s, n_clips, *, check_values):
    where = f"DREAMER.Data{{{s + 1}}} (subject {s + 1})"
    rec = _struct(value, where)
    eeg = _struct(_field(rec, "EEG", where), where + ".EEG")
    ecg = _struct(_field(rec, "ECG", where), where + ".ECG")
    cells = {}
    for name, sig in (("eeg", eeg), ("ecg", ecg)):
        for part in ("baseline", "stimuli"):
            w = f"{where}.{name.upper()}.{part}"
            cells[name, part] = _cell(_field(sig, part, w.rsplit(".", 1)[0]), w, n_clips)
            n_clips = cells[name, part].size
    ratings = np.empty((n_clips, len(DIMENSIONS)), dtype=np.int64)
    for d, name in enumerate(_SCORE_FIELDS):
        w = f"{where}.{name}"
        raw = np.asarray(_field(rec, name, where), dtype=float).reshape(-1)
        if raw.size != n_clips:
            raise DataError(f"{w} holds {raw.size} ratings; expected one per clip "
                            f"({n_clips}); the file does not have the DREAMER layout.")
        lo, hi = RATING_RANGE
        bad = ~(np.isfinite(raw) & (raw >= lo) & (raw <= hi) & (raw == np.round(raw)))
        if bad.any():
            j = int(np.argmax(bad))
            raise DataError(f"{w}: subject {s + 1}, clip {j + 1} has rating {raw[j]!r}; "
                            f"ratings must be integers {lo}..{hi}; fix or drop that entry "
                            "(physioemo never invents a label).")
        ratings[:, d] = raw.astype(np.int64)
    out = {k: [] for k in cells}
    for j in range(n_clips):
        clip = f"subject {s + 1}, clip {j + 1}"
        eb = _matrix(cells["eeg", "baseline"][j], f"{where}.EEG.baseline{{{j + 1}}} ({clip})",
                     len(EEG_CHANNELS), BASELINE_SAMPLES, ", 61 s at 128 Hz")
        es = _matrix(cells["eeg", "stimuli"][j], f"{where}.EEG.stimuli{{{j + 1}}} ({clip})",
                     len(EEG_CHANNELS))
        cb = _matrix(cells["ecg", "baseline"][j], f"{where}.ECG.baseline{{{j + 1}}} ({clip})",
                     N_ECG_CHANNELS, BASELINE_SAMPLES * _ECG_RATIO, ", 61 s at 256 Hz")
        cs = _matrix(cells["ecg", "stimuli"][j], f"{where}.ECG.stimuli{{{j + 1}}} ({clip})",
                     N_ECG_CHANNELS, es.shape[1] * _ECG_RATIO,
                     ", twice the EEG stimulus length at 256 Hz")
        if check_values:
            for arr, part in ((eb, "EEG baseline"), (es, "EEG stimulus"),
                              (cb, "ECG baseline"), (cs, "ECG stimulus")):
                _check_finite(arr, f"{part} of {clip}")
        for key, arr in zip(cells, (eb, es, cb, cs), strict=True):
            out[key].append(arr)
    return DreamerSubject(out["eeg", "baseline"], out["eeg", "stimuli"], out["ecg", "baseline"],
                          out["ecg", "stimuli"], ratings, _text(_field(rec, "Age", where)),
                          _text(_field(rec, "Gender", where)), s)


# ----------------------------------------------------------------------------- lazy walker

_MI = {1: "i1", 2: "u1", 3: "i2", 4: "u2", 5: "i4", 6: "u4", 7: "f4", 9: "f8", 12: "i8",
       13: "u8", 16: "u1", 17: "u2", 18: "u4"}
_MX_CELL, _MX_STRUCT, _MX_CHAR = 1, 2, 4


class _V5Walker:
    """Walk an uncompressed MAT v5 file and memory-map its numeric matrices.

    Produces the same nested representation as ``scipy.io.loadmat`` with default arguments
    (structs as (1, 1) structured arrays, cells as object arrays), but every numeric leaf
    is a read-only ``np.memmap`` of shape ``(rows, cols)`` in Fortran order.
    """

    def __init__(self, path):
        self.path = path
        self.size = path.stat().st_size
        self.mm = np.memmap(path, dtype=np.uint8, mode="r")
        self.e = "<" if bytes(self.mm[126:128]) == b"IM" else ">"

    def _fail(self, pos, why):
        raise DataError(f"{str(self.path)!r} is truncated or corrupt ({why} at byte {pos} of "
                        f"{self.size}); re-copy the file.")

    def _tag(self, pos):
        if pos + 8 > self.size:
            self._fail(pos, "element tag past the end")
        first, second = struct.unpack(self.e + "II", bytes(self.mm[pos:pos + 8]))
        if first >> 16:  # small data element: type and size packed in 4 bytes
            return first & 0xFFFF, first >> 16, pos + 4, pos + 8
        end = pos + 8 + second + (-second % 8)
        if pos + 8 + second > self.size:
            self._fail(pos, f"element of {second} bytes past the end")
        return first, second, pos + 8, end

    def read_variable(self, name):
        pos = 128
        while pos < self.size:
            mtype, nbytes, data, end = self._tag(pos)
            if mtype == 15:
                raise DataError(f"{str(self.path)!r} has compressed variables; lazy loading "
                                "needs an uncompressed file; use lazy=False.")
            if mtype != 14:
                self._fail(pos, f"unexpected element type {mtype}")
            value, vname = self._matrix(data, data + nbytes)
            if vname == name:
                return value
            pos = end
        raise DataError(f"{str(self.path)!r} has no variable {name!r}; expected the DREAMER.mat "
                        f"layout; {_WHERE_TO_GET}.")

    def _sub(self, pos):
        mtype, nbytes, data, end = self._tag(pos)
        return mtype, nbytes, data, end

    def _read_array(self, pos):
        mtype, nbytes, data, end = self._sub(pos)
        dt = np.dtype(self.e + _MI.get(mtype, "u1"))
        return self.mm[data:data + nbytes].view(dt), end

    def _matrix(self, pos, stop):
        if pos == stop:  # empty matrix element
            return np.zeros((0, 0)), ""
        flags, pos = self._read_array(pos)
        mxclass = int(flags[0]) & 0xFF
        dims, pos = self._read_array(pos)
        shape = tuple(int(d) for d in dims)
        raw_name, pos = self._read_array(pos)
        name = bytes(raw_name).decode("latin-1")
        n = int(np.prod(shape))
        if mxclass == _MX_CELL:
            out = np.empty(shape, dtype=object)
            flat = out.reshape(-1, order="F") if out.ndim else out
            for i in range(n):
                mtype, nbytes, data, end = self._sub(pos)
                flat[i], _ = self._matrix(data, data + nbytes)
                pos = end
            return out, name
        if mxclass == _MX_STRUCT:
            flen, pos = self._read_array(pos)
            raw, pos = self._read_array(pos)
            flen = int(flen[0])
            fields = [bytes(raw[i:i + flen]).split(b"\0", 1)[0].decode("latin-1")
                      for i in range(0, raw.size, flen)]
            out = np.empty(shape, dtype=[(f, object) for f in fields])
            flat = out.reshape(-1, order="F")
            for i in range(n):
                for f in fields:
                    mtype, nbytes, data, end = self._sub(pos)
                    flat[i][f], _ = self._matrix(data, data + nbytes)
                    pos = end
            return out, name
        if mxclass == _MX_CHAR:
            arr, pos = self._read_array(pos)
            if arr.dtype.itemsize == 1:
                text = bytes(arr).decode("utf-8", "replace")
            else:
                text = "".join(chr(c) for c in np.asarray(arr))
            return np.array([text]), name
        mtype, nbytes, data, end = self._sub(pos)
        if 6 <= mxclass <= 15 and mtype in _MI and n * np.dtype(_MI[mtype]).itemsize == nbytes:
            dt = np.dtype(self.e + _MI[mtype])
            if n == 0:
                return np.zeros(shape), name
            arr = np.ndarray(shape, dtype=dt, buffer=self.mm, offset=data, order="F")
            return arr, name
        self._fail(pos, f"unsupported MATLAB class {mxclass}")
        return None, name  # pragma: no cover


# ----------------------------------------------------------------------------- preprocessing

#: Bumped whenever the numbers :func:`histn_preprocess` returns change (part of cache keys).
PREPROCESS_VERSION = 1
#: Accepted ``normalization`` values: the two forms of :mod:`physioemo.datasets.preprocessing`,
#: then two that are not for serving (``"baseline-zscore"`` is an earlier name of ``"paper"``).
NORMALIZATIONS = ("paper", "causal", "stimulus-zscore", "none")

_FLAT_FIX = "drop that subject (--subjects) or repair the channel in the file"


def histn_preprocess(dreamer, *, subjects=None, l_freq=None, h_freq=None,
                     normalization="paper"):
    """Preprocess DREAMER EEG exactly as HiSTN does (histn-spec section 1).

    For each subject, clip and channel: mean and population std (ddof=0) of the middle
    10 s of the clip's own baseline (samples 3264..4543); the last 60 s of the stimulus
    (7680 samples) z-scored with them; then divided by its maximum absolute value (the
    ``"paper"`` form of :mod:`physioemo.datasets.preprocessing`, which also defines the
    ``"causal"`` form and the flat-channel policy). No filtering by default. Computed in
    float64, returned as float32.

    Parameters
    ----------
    dreamer : Dreamer
        From :func:`load_dreamer`.
    subjects : sequence of int | None
        0-based subject indices (default: all, in file order).
    l_freq, h_freq : float | None
        Optional zero-phase Butterworth band-pass (:func:`physioemo.dsp.filter_data`,
        order 4) applied to the whole baseline and whole stimulus before anything else.
        Off in the paper recipe.
    normalization : str
        ``"paper"`` (the steps above; transductive: the max-abs scale covers the whole
        kept 60 s), ``"causal"`` (the same baseline z-score, then divided by the maximum
        absolute value of the z-scored baseline: what a live stream can compute, the form
        to train a model that ``physioemo acquire --model`` serves), ``"stimulus-zscore"``
        (z-score with the kept 60 s' own mean/std, then max-abs scaling) or ``"none"`` (the
        last 60 s as recorded, no scaling). ``"baseline-zscore"`` is an earlier name of
        ``"paper"``.

    Returns
    -------
    data : ndarray of float32, shape (n_subjects, n_clips, 14, 7680)
        Preprocessed EEG.
    labels : ndarray of int64, shape (n_subjects, n_clips, 3)
        Rating - 1 for valence, arousal, dominance (classes 0..4).

    Raises
    ------
    DataError
        A clip shorter than 60 s, NaNs, or a channel flat in its reference segment.
    """
    from .preprocessing import ALIASES, normalize

    normalization = ALIASES.get(normalization, normalization)
    check_option("normalization", normalization, NORMALIZATIONS)
    subjects = _check_subjects(subjects, dreamer.n_subjects)
    if l_freq is not None or h_freq is not None:
        from ..dsp import filter_data
        from ..utils._checks import check_freq

        check_freq("l_freq", l_freq, dreamer.eeg_sfreq)
        check_freq("h_freq", h_freq, dreamer.eeg_sfreq)
    n_clips = dreamer.n_clips
    data = np.empty((len(subjects), n_clips, len(EEG_CHANNELS), STIMULUS_SAMPLES),
                     dtype=np.float32)
    labels = np.empty((len(subjects), n_clips, len(DIMENSIONS)), dtype=np.int64)
    b0, b1 = BASELINE_MIDDLE
    for i, s in enumerate(subjects):
        subj = dreamer.subjects[s]
        labels[i] = subj.ratings - 1
        for j in range(n_clips):
            where = f"subject {s + 1}, clip {j + 1}"
            stim = subj.eeg_stimulus[j]
            if stim.shape[-1] < STIMULUS_SAMPLES:
                raise DataError(f"EEG stimulus of {where} has {stim.shape[-1]} samples; HiSTN "
                                f"keeps the last {STIMULUS_SAMPLES} (60 s), so clips must be at "
                                "least 60 s long; generate longer clips or drop this one.")
            base = subj.eeg_baseline[j]
            if l_freq is not None or h_freq is not None:
                stim = filter_data(np.asarray(stim, dtype=np.float64), dreamer.eeg_sfreq,
                                   l_freq, h_freq)
                base = filter_data(np.asarray(base, dtype=np.float64), dreamer.eeg_sfreq,
                                   l_freq, h_freq)
            x = np.array(stim[:, -STIMULUS_SAMPLES:], dtype=np.float64)
            _check_finite(x, f"EEG stimulus of {where}")
            if normalization == "none":
                data[i, j] = x
                continue
            if normalization == "stimulus-zscore":
                ref, form, reference = x, "paper", "the kept 60 s of its stimulus"
            else:
                ref = np.asarray(base[:, b0:b1], dtype=np.float64)
                _check_finite(ref, f"EEG baseline of {where}")
                form = normalization
                reference = f"the middle 10 s of its baseline (samples {b0}..{b1 - 1})"
            data[i, j] = normalize(x, ref, form=form, ch_names=EEG_CHANNELS, where=where,
                                   reference=reference, hint=_FLAT_FIX)
    return data, labels


def _check_subjects(subjects, n_subjects):
    if subjects is None:
        return list(range(n_subjects))
    try:
        subjects = [int(s) for s in subjects]
    except (TypeError, ValueError):
        raise ParameterError(f"subjects must be a sequence of 0-based subject indices, got "
                             f"{subjects!r}; pass e.g. subjects=[0, 1].") from None
    bad = [s for s in subjects if not 0 <= s < n_subjects]
    if bad or not subjects:
        raise ParameterError(f"subjects={subjects!r} must be non-empty 0-based indices in "
                             f"0..{n_subjects - 1} (the file has {n_subjects} subjects); "
                             "remove the out-of-range ones (the CLI counts from 1).")
    return subjects
