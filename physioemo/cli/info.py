"""``physioemo info``: summarise a DREAMER file."""

from __future__ import annotations

HELP = "summarise a DREAMER file: subjects, clips, durations, rating histograms"
DESCRIPTION = """Read a DREAMER.mat (the real one or a synthetic stand-in) and print a summary:
file format and size, subjects and clips, stimulus durations per clip, rating histograms per
dimension, the classes each subject never used (which matter for per-subject folds), and
which subjects `physioemo evaluate` can use: each subject is preprocessed as evaluate does,
and the first problem of each unusable one is named (NaN or infinite samples, a stimulus
shorter than 60 s, a flat channel). The exit code is 0 either way; `evaluate --subjects`
with usable subjects only works even if others are unusable.

The file is given by --dreamer PATH or the PHYSIOEMO_DREAMER_PATH environment variable.
DREAMER is distributed by its authors on request (https://zenodo.org/record/546113).

examples:
  physioemo info --dreamer ~/data/DREAMER.mat
  PHYSIOEMO_DREAMER_PATH=~/data/DREAMER.mat physioemo info
"""


def add_arguments(parser):
    """Add the command's options."""
    parser.add_argument("--dreamer", metavar="PATH", default=None,
                        help="the DREAMER.mat file (default: $PHYSIOEMO_DREAMER_PATH)")


def summarize(dreamer, problems=None):
    """Return the summary printed by ``physioemo info`` as text.

    Parameters
    ----------
    dreamer : Dreamer
        A loaded file.
    problems : dict of int to str | None
        From :func:`physioemo.datasets.validation.check_subjects`; adds the usable
        subjects and the problem of each other one.

    Returns
    -------
    text : str
        Multi-line summary.
    """
    import numpy as np

    from ..datasets.dreamer import DIMENSIONS, RATING_RANGE

    ratings = dreamer.ratings  # (n_subjects, n_clips, 3)
    classes = np.arange(RATING_RANGE[0], RATING_RANGE[1] + 1)
    secs = np.array([[x.shape[-1] / dreamer.eeg_sfreq for x in s.eeg_stimulus]
                     for s in dreamer.subjects])
    size = dreamer.path.stat().st_size
    lines = [
        f"file          {dreamer.path} ({size / 1e6:.1f} MB)",
        f"subjects      {dreamer.n_subjects}",
        f"clips         {dreamer.n_clips} per subject",
        f"EEG           {len(dreamer.eeg_channels)} channels at {dreamer.eeg_sfreq:g} Hz: "
        + " ".join(dreamer.eeg_channels),
        f"ECG           2 leads at {dreamer.ecg_sfreq:g} Hz",
        f"stimulus      {secs.min():.1f}-{secs.max():.1f} s (mean {secs.mean():.1f} s), "
        f"total {secs.sum() / 3600:.2f} h",
    ]
    provider = dreamer.info.get("Provider")
    if provider:
        lines.append(f"provider      {provider}")
    lines += ["", "clip  " + " ".join(f"{j + 1:>6d}" for j in range(dreamer.n_clips)),
              "sec   " + " ".join(f"{v:6.1f}" for v in secs.mean(axis=0))]
    lines += ["", "ratings       " + " ".join(f"{c:>5d}" for c in classes) + "   mean"]
    for d, dim in enumerate(DIMENSIONS):
        counts = [(ratings[..., d] == c).sum() for c in classes]
        lines.append(f"{dim:<13} " + " ".join(f"{n:>5d}" for n in counts)
                     + f"   {ratings[..., d].mean():.2f}")
    lines += ["", "missing classes per subject (ratings never given):",
              "subject " + " ".join(f"{dim:<15}" for dim in DIMENSIONS)]
    for s in range(dreamer.n_subjects):
        cells = []
        for d in range(len(DIMENSIONS)):
            missing = [str(c) for c in classes if not (ratings[s, :, d] == c).any()]
            cells.append(f"{','.join(missing) or '-':<15}")
        lines.append(f"{s + 1:>7d} " + " ".join(cells))
    if problems is not None:
        usable = [n for n, p in problems.items() if p is None]
        lines += ["", f"usable by evaluate: {len(usable)} of {len(problems)} subjects"
                  + (f" ({' '.join(map(str, usable))})" if usable else "")]
        lines += [f"unusable subject {n}: {p}" for n, p in problems.items() if p is not None]
    return "\n".join(lines)


def run(args):
    """Print the summary."""
    from ..datasets.dreamer import load_dreamer
    from ..datasets.validation import check_subjects

    dreamer = load_dreamer(args.dreamer, lazy=True)
    print(summarize(dreamer, check_subjects(dreamer)))
    return 0
