"""``physioemo predict``: apply a trained model to an EDF recording."""

from __future__ import annotations

HELP = "apply a trained model to an EDF recording; per-window class probabilities"
DESCRIPTION = """Apply a checkpoint written by `physioemo evaluate` (out/checkpoints/*.pt) to an
EDF/EDF+ recording and write one row per window: start time, the probability of each rating
1..5 and the predicted rating.

Preprocessing follows the DREAMER recipe (histn-spec section 1) as far as a recording
allows: the checkpoint's channels are picked by name (case-insensitive; an "EEG " prefix and
a "-REF"/"-LE" suffix are ignored) and the command refuses if one is missing; a recording
at another rate than the model's (128 Hz) is refused unless --resample is given, which
resamples it (MNE, FFT-based with anti-aliasing; logged as a warning, since upsampling
cannot restore the band above the recording's Nyquist); each channel is z-scored with the
mean and population std of a BASELINE segment of the recording itself (default: its first
10 s, --baseline-start / --baseline-seconds; DREAMER used a neutral 61-s clip before each
stimulus, take the middle 10 s of such a segment if your recording has one); then each
consecutive 60-s segment of each channel is divided by its maximum absolute value (as each
60-s DREAMER clip was). The output never replaces an existing file without --force, nor
the EDF or the checkpoint even with --force.
Windows are 1 s (128 samples) every --step seconds over the whole recording.

examples:
  physioemo predict --checkpoint run/checkpoints/subject01.pt --edf rec.edf --out pred.csv
  physioemo predict --checkpoint model.pt --edf rec.edf --baseline-start 25.5 --step 0.5
  physioemo predict --checkpoint model.pt --edf rec256.edf --resample --out p.csv --force
"""

#: Length of the segments that are max-abs scaled (one DREAMER clip, 60 s).
SEGMENT_S = 60.0


def add_arguments(parser):
    """Add the command's options."""
    parser.add_argument("--checkpoint", required=True, metavar="FILE",
                        help="model checkpoint (.pt) written by `physioemo evaluate`")
    parser.add_argument("--edf", required=True, metavar="FILE", help="EDF/EDF+ recording")
    parser.add_argument("--out", metavar="CSV",
                        help="output CSV (default: the EDF's name with .predictions.csv)")
    parser.add_argument("--baseline-start", dest="baseline_start", type=float, default=0.0,
                        metavar="S", help="start of the baseline segment in s (default 0)")
    parser.add_argument("--baseline-seconds", dest="baseline_seconds", type=float,
                        default=10.0, metavar="S", help="baseline length in s (default 10)")
    parser.add_argument("--step", type=float, default=1.0, metavar="S",
                        help="seconds between window starts (default 1)")
    parser.add_argument("--resample", action="store_true",
                        help="resample a recording whose rate differs from the model's "
                             "(refused otherwise; logged)")
    parser.add_argument("--force", action="store_true",
                        help="replace an existing --out file (never the EDF or checkpoint)")


def _norm(name):
    name = name.upper().replace(" ", "")
    if name.startswith("EEG"):
        name = name[3:]
    for suffix in ("-REF", "-LE", "-AVG"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
    return name


def normalize_recording(data, sfreq, baseline_start_s=0.0, baseline_s=10.0,
                        segment_s=SEGMENT_S):
    """Normalise a recording like DREAMER clips (z-score to a baseline, max-abs per 60 s).

    Parameters
    ----------
    data : ndarray, shape (n_channels, n_times)
        The recording at ``sfreq``.
    sfreq : float
        Sampling frequency in Hz.
    baseline_start_s, baseline_s : float
        The baseline segment, in seconds from the start.
    segment_s : float
        Length of the segments divided by their own maximum absolute value.

    Returns
    -------
    out : ndarray of float32, shape (n_channels, n_times)
    """
    import numpy as np

    from ..exceptions import DataError

    lo = int(round(baseline_start_s * sfreq))
    hi = lo + int(round(baseline_s * sfreq))
    if lo < 0 or hi > data.shape[-1] or hi - lo < 2:
        raise DataError(f"baseline {baseline_start_s}..{baseline_start_s + baseline_s} s is not "
                        f"inside the recording (0..{data.shape[-1] / sfreq:.1f} s); choose "
                        "--baseline-start/--baseline-seconds inside it.")
    base = data[:, lo:hi]
    std = base.std(axis=-1, keepdims=True)
    std[std == 0] = 1.0
    z = (data - base.mean(axis=-1, keepdims=True)) / std
    seg = int(round(segment_s * sfreq))
    for s0 in range(0, z.shape[-1], seg):
        block = z[:, s0:s0 + seg]
        peak = np.abs(block).max(axis=-1, keepdims=True)
        peak[peak == 0] = 1.0
        z[:, s0:s0 + seg] = block / peak
    return z.astype(np.float32)


def run(args):
    """Run the prediction."""
    import csv
    import io

    import mne
    import numpy as np
    import torch

    from ..datasets.dreamer import EEG_CHANNELS
    from ..exceptions import DataError
    from ..models import load_checkpoint
    from ..utils._checks import check_number, check_output_path, check_path, check_resample
    from ..utils.config import atomic_write_text

    ckpt = check_path("checkpoint", args.checkpoint,
                      hint="pass a .pt file from an evaluate run's checkpoints/ folder")
    edf = check_path("EDF file", args.edf, hint="pass the path of an .edf recording")
    step_s = check_number("step", args.step, low=0, low_inclusive=False)
    out = check_output_path(args.out or edf.with_suffix(".predictions.csv"), force=args.force,
                            inputs=(edf, ckpt))
    model, extra = load_checkpoint(ckpt)
    extra = extra or {}
    ch_names = list(extra.get("ch_names") or getattr(model, "ch_names", None) or EEG_CHANNELS)
    sfreq = float(extra.get("sfreq", 128.0))
    window = int(extra.get("window_samples", 128))
    try:
        raw = mne.io.read_raw_edf(edf, preload=True, verbose="error")
    except Exception as err:  # mne raises several types for a bad file
        raise DataError(f"could not read {str(edf)!r} as EDF ({type(err).__name__}: {err}); "
                        "pass an EDF/EDF+ file.") from None
    available = {_norm(n): n for n in raw.ch_names}
    missing = [c for c in ch_names if _norm(c) not in available]
    if missing:
        raise DataError(f"{str(edf)!r} lacks the channel(s) {missing} the model was trained "
                        f"on (it has {raw.ch_names}); the recording must hold {ch_names}; "
                        "record or rename those channels.")
    raw.pick([available[_norm(c)] for c in ch_names])
    if check_resample(repr(edf.name), raw.info["sfreq"], sfreq, resample=args.resample):
        raw.resample(sfreq, verbose="error")
    data = raw.get_data()
    if data.shape[-1] < window:
        raise DataError(f"{str(edf)!r} holds {data.shape[-1]} samples after resampling, fewer "
                        f"than one window ({window}); pass a longer recording.")
    x = normalize_recording(data, sfreq, args.baseline_start, args.baseline_seconds)
    step = max(1, int(round(step_s * sfreq)))
    starts = np.arange(0, x.shape[-1] - window + 1, step)
    view = np.lib.stride_tricks.sliding_window_view(x, window, axis=-1)
    windows = np.ascontiguousarray(view[:, starts].transpose(1, 0, 2))
    with torch.no_grad():
        proba = torch.cat([torch.softmax(model(torch.from_numpy(windows[i:i + 1024])), 1)
                           for i in range(0, len(windows), 1024)]).numpy()
    n_classes = proba.shape[1]
    fid = io.StringIO()  # written whole, then renamed: --force never leaves half a file
    writer = csv.writer(fid)
    writer.writerow(["window", "start_s"] + [f"p_rating{k + 1}" for k in range(n_classes)]
                    + ["predicted_rating"])
    for i, (s, p) in enumerate(zip(starts, proba, strict=True)):
        writer.writerow([i, f"{s / sfreq:.3f}"] + [f"{v:.6f}" for v in p]
                        + [int(p.argmax()) + 1])
    atomic_write_text(out, fid.getvalue())
    dim = extra.get("dimension", "rating")
    counts = np.bincount(proba.argmax(1), minlength=n_classes)
    print(f"{len(starts)} windows of {edf.name} -> {out}; predicted {dim} ratings 1..5: "
          f"{counts.tolist()}")
    return 0
