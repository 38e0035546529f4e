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
stimulus, take the middle 10 s of such a segment if your recording has one); then scaled
with the normalisation form the checkpoint was trained with (`evaluate --normalization`;
a checkpoint that does not record one is "paper"): "paper" divides each consecutive 60-s
segment of each channel by its maximum absolute value (as each 60-s DREAMER clip was),
"causal" divides by the maximum absolute value of the z-scored baseline, and its windows
start where the baseline ends (what `acquire --model` computes live: on the same
recording, with the same checkpoint, it gives the live file's probabilities). A channel
that is flat in the baseline is an error. The output never replaces an existing file
without --force, nor the EDF or the checkpoint even with --force.
Windows are 1 s (128 samples) every --step seconds over the whole recording.

examples:
  physioemo predict --checkpoint run/checkpoints/subject01.pt --edf rec.edf --out pred.csv
  physioemo predict --checkpoint model.pt --edf rec.edf --baseline-start 25.5 --step 0.5
  physioemo predict --checkpoint model.pt --edf rec256.edf --resample --out p.csv --force
"""

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


def run(args):
    """Run the prediction."""
    import numpy as np

    from ..inference.predict import predict_edf, write_predictions
    from ..utils._checks import check_number, check_output_path, check_path

    ckpt = check_path("checkpoint", args.checkpoint,
                      hint="pass a .pt file from an evaluate run's checkpoints/ folder")
    edf = check_path("EDF file", args.edf, hint="pass the path of an .edf recording")
    step_s = check_number("step", args.step, low=0, low_inclusive=False)
    out = check_output_path(args.out or edf.with_suffix(".predictions.csv"), force=args.force,
                            inputs=(edf, ckpt))
    result = predict_edf(ckpt, edf, baseline_start_s=args.baseline_start,
                         baseline_s=args.baseline_seconds, step_s=step_s,
                         resample=args.resample)
    write_predictions(out, result)
    proba, spec = result["proba"], result["spec"]
    counts = np.bincount(proba.argmax(1), minlength=proba.shape[1])
    print(f"{len(proba)} windows of {edf.name} -> {out} ({spec.normalization} "
          f"normalisation); predicted {spec.dimension} ratings 1..5: {counts.tolist()}")
    return 0
