"""Tune HiSTN's hyper-parameters with Optuna, then evaluate the best configuration.

What it does
------------
1. ``physioemo tune`` searches ``--search-space`` (default
   ``configs/search_space_histn.yaml``: Gaussian width, smoothing, region graph, epochs,
   learning rate, dropout, batch size) for
   one protocol and dimension on the *tuning subjects* (``--subjects``; default: the first
   quarter of the file, at least 1, and 2 for ``reston1``/``reston1-nc``/``1on1``), usually
   on a few folds (``--folds``) to keep trials cheap, and writes
   ``OUT/tune/best_config.yaml`` (keys are ``physioemo evaluate`` options), ``trials.csv``,
   ``study.json`` and plots. The objective is a validation metric, never a test one: the
   fold's validation block for ``sd``/``sd-strict``, an inner leave-one-subject-out split
   of the tuning subjects for the subject-independent protocols (only the tuning subjects
   are loaded; see ``physioemo tune --help``).
2. ``physioemo evaluate --config OUT/tune/best_config.yaml`` runs the best configuration on
   every fold of the *evaluation subjects* (``--eval-subjects``; default: every subject of
   the file not tuned on) into ``OUT/evaluate/`` (tables and ``report.html``).

The two subject sets are disjoint: hyper-parameters chosen on a subject make its score
optimistic, so ``--eval-subjects`` that overlap ``--subjects`` are refused before anything
runs (as is a tuning set that leaves no subject to evaluate).

A rerun of the same command resumes both steps (the study's trial budget is global; the
evaluation skips finished folds). Several machines can share the study with
``--storage postgresql://...`` (see ``physioemo tune --help``).

Expected run time: each trial costs what ``physioemo evaluate`` costs on the tuned subjects
and folds. ``sd-strict`` trains on about 90,600 windows per fold (354 batches of 256 per
epoch); at the ~18,700 windows/s of ``benchmarks/results/train.md`` (2 CPU cores, Numba
kernels) the full recipe (50 epochs) costs about 4 min per subject and fold, so 20 trials
on 3 subjects with ``--folds 0`` take about 4 h and the final evaluation of all 6 folds of
23 subjects about 9 h (about 7 h with ``--jobs 2``); a busy machine is slower. The
batch-size search changes this: a trial with batch 64 takes 4 times as many steps per
epoch (each cheaper, but not 4 times).
Use ``--jobs``, several machines (PostgreSQL storage) or ``--device cuda`` to go faster
(one full-recipe ``sd`` epoch took 0.6 s on an H200, the whole step replayed as a CUDA
graph, against about 5.5 s on 2 CPU cores: ``benchmarks/results/train-cuda.md``,
``train.md``).
``--tiny``: a generated 2-subject, 4-clip DREAMER-format file, ``sd`` tuned on subject 1, 2
trials of one batch on fold 0, then the evaluation of subject 2 on all 10 folds: about 25 s
(up to a minute on a busy machine).

Examples
--------
    python pipelines/tune_then_evaluate.py --dreamer DREAMER.mat --protocol sd-strict \\
        --subjects 1 2 3 --folds 0 --n-trials 20 --out tuned    # evaluates 4..23
    python pipelines/tune_then_evaluate.py --tiny --out /tmp/tuned-tiny
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import yaml

from physioemo.cli.main import run_command

TINY_SPACE = """\
# tiny search space for CI: two parameters, one epoch
sigma: {type: float, low: 0.25, high: 2.0, log: true}
smoothing: {type: categorical, choices: [gaussian, onehot]}
epochs: 1
"""


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dreamer", default=os.environ.get("PHYSIOEMO_DREAMER_PATH"),
                   help="DREAMER.mat (default: $PHYSIOEMO_DREAMER_PATH)")
    p.add_argument("--out", required=True, help="output folder (tune/ and evaluate/ inside)")
    p.add_argument("--protocol", default="sd-strict", help="protocol (default sd-strict)")
    p.add_argument("--dimension", default="valence", help="dimension (default valence)")
    p.add_argument("--search-space", help="YAML search space (default: the tune default)")
    p.add_argument("--n-trials", type=int, help="trials in the study (default 20; tiny: 2)")
    p.add_argument("--metric", default="weighted_f1", help="objective (weighted_f1)")
    p.add_argument("--subjects", nargs="+", type=int,
                   help="tuning subjects (default: the first quarter of the file)")
    p.add_argument("--folds", nargs="+", type=int, help="folds tuned on (default all)")
    p.add_argument("--eval-subjects", nargs="+", type=int,
                   help="subjects of the final evaluation, disjoint from --subjects "
                        "(default: every subject not tuned on)")
    p.add_argument("--jobs", type=int, default=1, help="tuning workers / evaluation processes")
    p.add_argument("--storage", help="Optuna storage URL (default: a file in OUT/tune)")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--tiny", action="store_true",
                   help="CI mode: tiny generated file, 2 trials of one batch")
    args = p.parse_args(argv)
    if args.n_trials is None:
        args.n_trials = 2 if args.tiny else 20
    if not (args.dreamer or args.tiny):
        p.error("pass --dreamer PATH (or set PHYSIOEMO_DREAMER_PATH)")
    return args


def subject_sets(dreamer, protocol, tuning, evaluation):
    """Return (tuning, evaluation) subject numbers: disjoint, or exit with the reason."""
    from physioemo.datasets.dreamer import load_dreamer

    n = load_dreamer(dreamer, lazy=True).n_subjects
    everyone = list(range(1, n + 1))
    if tuning is None:
        least = 2 if protocol in ("reston1", "reston1-nc", "1on1") else 1
        tuning = everyone[:max(least, n // 4)]
    tuning = sorted(set(tuning))
    if evaluation is None:
        evaluation = [s for s in everyone if s not in set(tuning)]
    evaluation = sorted(set(evaluation))
    both = sorted(set(tuning) & set(evaluation))
    if both:
        sys.exit(f"tune_then_evaluate: error: --eval-subjects {evaluation} overlap the tuning "
                 f"subjects {tuning} in {both}; hyper-parameters chosen on a subject make its "
                 "score optimistic, so the evaluation subjects must not be tuned on; pass "
                 "disjoint --subjects and --eval-subjects (or leave --eval-subjects out: "
                 "every subject not tuned on).")
    if not evaluation:
        sys.exit(f"tune_then_evaluate: error: tuning on subjects {tuning} leaves none of the "
                 f"file's {n} subjects to evaluate; tune on fewer --subjects.")
    return tuning, evaluation


def main(argv=None):
    args = parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    tune = ["tune", "--protocol", args.protocol, "--dimension", args.dimension,
            "--n-trials", str(args.n_trials), "--metric", args.metric, "--jobs", str(args.jobs),
            "--device", args.device, "--seed", str(args.seed), "--out", str(out / "tune")]
    evaluate_extra = ["--jobs", str(args.jobs)]
    dreamer, space = args.dreamer, args.search_space
    if args.tiny:
        from physioemo.datasets import make_synthetic_dreamer

        dreamer = out / "tiny_dreamer.mat"
        if not dreamer.exists():
            make_synthetic_dreamer(dreamer, n_subjects=2, n_clips=4, stimulus_seconds=61,
                                   seed=args.seed)
        space = out / "tiny_space.yaml"
        space.write_text(TINY_SPACE)
        tune[tune.index("--protocol") + 1] = args.protocol = "sd"
        tune += ["--steps-per-epoch", "1", "--no-plots", "--cache-dir", str(out / "cache")]
        args.subjects, args.folds = args.subjects or [1], args.folds or [0]
        evaluate_extra += ["--threads", "1"]
    args.subjects, args.eval_subjects = subject_sets(dreamer, args.protocol, args.subjects,
                                                     args.eval_subjects)
    print(f"tuning subjects {args.subjects}; evaluation subjects {args.eval_subjects}")
    tune += ["--dreamer", str(dreamer)]
    if space:
        tune += ["--search-space", str(space)]
    if args.storage:
        tune += ["--storage", args.storage]
    if args.subjects:
        tune += ["--subjects", *map(str, args.subjects)]
    if args.folds:
        tune += ["--folds", *map(str, args.folds)]
    run_command([*tune, "-q"], check=True)

    best = out / "tune" / "best_config.yaml"
    if not best.exists():
        sys.exit(f"tuning finished without a complete trial: no {best}; see "
                 f"{out / 'tune' / 'trials.csv'}")
    print(best.read_text())
    evaluate = ["evaluate", "--config", str(best), "--out", str(out / "evaluate"),
                *evaluate_extra]
    evaluate += ["--subjects", *map(str, args.eval_subjects)]
    run_command([*evaluate, "-q"], check=True)
    config = yaml.safe_load(best.read_text())
    print(f"best configuration: {best} (tuned on subjects {args.subjects}, evaluated on "
          f"{args.eval_subjects})\n  "
          + ", ".join(f"{k}={config[k]}" for k in ("sigma", "smoothing", "graph", "epochs")
                      if k in config)
          + f"\nevaluation: {out / 'evaluate' / 'results.md'}, "
            f"{out / 'evaluate' / 'report.html'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
