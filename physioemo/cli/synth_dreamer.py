"""``physioemo synth-dreamer``: write a seeded DREAMER-layout stand-in file."""

from __future__ import annotations

HELP = "write a synthetic file with DREAMER's exact layout (seeded, planted effect)"
DESCRIPTION = """Write a MATLAB file with exactly the layout of DREAMER.mat, filled with seeded
synthetic EEG (1/f background, alpha, blinks, line noise, DC offsets) and ECG (heart beats),
ratings around DREAMER's per-clip means, and a documented rating-dependent effect
(see physioemo.datasets.synthetic). Every other command reads it like the real file.

examples:
  physioemo synth-dreamer --out dreamer-synth.mat                  # full size, ~2 GB
  physioemo synth-dreamer --out tiny.mat --subjects 2 --stimulus-seconds 62 --seed 1
  physioemo info --dreamer tiny.mat
  physioemo synth-dreamer --out null.mat --subjects 2 --stimulus-seconds 62 --effect-size 0

--effect-size 0 writes a file without the planted effect (the same subjects and ratings,
signals independent of the ratings): a negative control, on which any score above chance
comes from a shortcut such as the per-clip drift (see docs/reproducing-the-paper.md).
"""


def add_arguments(parser):
    """Add the command's options."""
    parser.add_argument("--out", required=True, metavar="PATH",
                        help="output .mat file (written atomically)")
    parser.add_argument("--subjects", type=int, default=23, metavar="N",
                        help="number of subjects (default: 23, as DREAMER)")
    parser.add_argument("--clips", type=int, default=18, metavar="N",
                        help="clips per subject (default: 18, as DREAMER)")
    parser.add_argument("--stimulus-seconds", type=float, default=None, metavar="S",
                        help="length of every stimulus in seconds (default: DREAMER-like "
                             "65-393 s per clip; use >= 60 for HiSTN preprocessing)")
    parser.add_argument("--effect-size", type=float, default=None, metavar="K",
                        help="size of the planted rating effect (default: "
                             "physioemo.datasets.synthetic.EFFECT_SIZE = 0.6); 0 switches "
                             "it off")
    parser.add_argument("--force", action="store_true",
                        help="replace an existing --out file")


def run(args):
    """Generate the file."""
    from ..datasets.synthetic import EFFECT_SIZE, make_synthetic_dreamer
    from ..utils._checks import check_output_path

    effect = EFFECT_SIZE if args.effect_size is None else args.effect_size
    check_output_path(args.out, force=args.force, parents=True)
    seed = 0 if args.seed is None else args.seed
    path = make_synthetic_dreamer(args.out, n_subjects=args.subjects, n_clips=args.clips,
                                  stimulus_seconds=args.stimulus_seconds, seed=seed,
                                  effect_size=effect)
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB): {args.subjects} subjects x "
          f"{args.clips} clips, seed {seed}, effect size {effect:g}")
    return 0
