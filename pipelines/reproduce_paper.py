"""Reproduce the paper's subject-dependent and subject-independent tables on DREAMER.

What it does
------------
Runs ``physioemo evaluate`` four times on your ``DREAMER.mat`` with the paper's recipes
(Kuang et al., "HiSTN", arXiv 2408.15255, section 5):

* ``sd`` (subject-dependent, 10 temporal blocks per clip) for valence and arousal: the SD
  table;
* ``reston1`` (leave-one-subject-out pretraining with label correction, then fine-tuning on
  the first 10 s of every clip of the new subject) for valence and arousal: the SI table;

each into ``OUT/<protocol>-<dimension>/`` (resumable: rerunning the same command skips the
(subject, fold) results already written). Then it builds one report over the four runs
(:func:`physioemo.evaluation.report.build_report`: ``OUT/results.csv``, ``results.md``,
``report.html`` with plots) and ``OUT/paper_comparison.md``, our mean ± std weighted F1 over
subjects beside the paper's reported number (:data:`physioemo.evaluation.report.PAPER_F1`)
and the wall time of each run.

Expected run time on the full DREAMER (23 subjects, 2 CPU cores):

* ``sd``: 10 folds x 50 epochs of about 420 batches of 256 windows per subject (53 M
  windows). Measured in ``benchmarks/results/train.md`` (real epochs through the
  protocol, Numba kernels): about 31 min per subject and dimension with ``--jobs 2`` (the
  subject's folds in 2 single-threaded processes), 46 min in one 2-thread process, so about
  24 h for 23 subjects x 2 dimensions; more on a busy machine.
* ``reston1``: 100 pretraining epochs over the other 22 subjects (2.4 M windows in batches
  of 120) plus 400 fine-tuning epochs (270 k windows). Measured on a shared 2-core machine
  (load ~6) with 2 pretraining subjects, before the fused kernels (the Numba kernels train
  about 1.5x faster than that PyTorch-operator path): about 870 windows/s, i.e. about 50 min
  per subject and dimension, about 40 h for the SI table; an idle machine with the fused
  kernels is faster (not re-timed).

Use ``--jobs K`` (subjects, and the folds of ``sd``, in parallel processes: ``--jobs 2``
on 2 cores), ``--device cuda``, or split the subjects
across machines: each runs ``--subjects ...`` into its own OUT; then concatenate the
``<protocol>-<dimension>/results.jsonl`` files of all machines into one OUT and run
``--report-only`` there. ``--protocols reston1`` alone (the SI table) is the cheap part.
``--tiny``: a generated 3-subject, 4-clip DREAMER-format file, subject 1 only, one epoch of
one batch: about 20 s (the numbers mean nothing; it checks the whole path).

Examples
--------
    python pipelines/reproduce_paper.py --dreamer ~/data/DREAMER.mat --out paper --jobs 2
    python pipelines/reproduce_paper.py --dreamer DREAMER.mat --out paper --protocols reston1
    python pipelines/reproduce_paper.py --out paper --report-only
    python pipelines/reproduce_paper.py --tiny --out /tmp/paper-tiny
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from physioemo.cli.main import run_command

PROTOCOLS = ("sd", "reston1")
DIMENSIONS = ("valence", "arousal")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dreamer", default=os.environ.get("PHYSIOEMO_DREAMER_PATH"),
                   help="DREAMER.mat (default: $PHYSIOEMO_DREAMER_PATH)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--protocols", nargs="+", choices=PROTOCOLS, default=list(PROTOCOLS))
    p.add_argument("--dimensions", nargs="+", choices=DIMENSIONS, default=list(DIMENSIONS))
    p.add_argument("--subjects", nargs="+", type=int, help="subjects 1..23 (default: all)")
    p.add_argument("--jobs", type=int, default=1, help="subjects in parallel processes")
    p.add_argument("--threads", type=int, help="torch threads per process")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--report-only", action="store_true",
                   help="only rebuild the report from the runs already in --out")
    p.add_argument("--tiny", action="store_true",
                   help="CI mode: tiny generated file, subject 1, one epoch of one batch")
    args = p.parse_args(argv)
    if not (args.dreamer or args.tiny or args.report_only):
        p.error("pass --dreamer PATH (or set PHYSIOEMO_DREAMER_PATH); DREAMER is distributed "
                "by its authors on request (https://zenodo.org/record/546113)")
    return args


def comparison(run_dirs, seconds):
    """Markdown table: our mean ± std weighted F1 beside the paper's number."""
    from physioemo.evaluation.report import PAPER_F1, load_results, summarize

    lines = ["# HiSTN on DREAMER: this run beside the paper",
             "",
             "Weighted F1 (%), mean ± std over subjects of the per-subject fold means. The "
             "paper's numbers are Kuang et al. 2024 (arXiv 2408.15255) as reported, not ours.",
             "",
             "| protocol | dimension | subjects | ours | paper | ours - paper | wall time |",
             "|---|---|---:|---:|---:|---:|---:|"]
    for (protocol, dimension), run_dir in run_dirs.items():
        rows = summarize(load_results(run_dir))
        mean = next(r for r in rows if r["subject"] == "mean")
        std = next(r for r in rows if r["subject"] == "std")
        paper = PAPER_F1.get((protocol, dimension))
        diff = "—" if paper is None else f"{mean['weighted_f1'] - paper:+.2f}"
        secs = seconds.get((protocol, dimension))
        wall = ("—" if secs is None else f"{secs:.0f} s" if secs < 120
                else f"{secs / 60:.1f} min" if secs < 7200 else f"{secs / 3600:.1f} h")
        lines.append(f"| {protocol} | {dimension} | {mean['n_folds']} | "
                     f"{mean['weighted_f1']:.2f} ± {std['weighted_f1']:.2f} | "
                     f"{'—' if paper is None else f'{paper:.2f}'} | {diff} | {wall} |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    args = parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    common = ["--seed", str(args.seed), "--device", args.device, "--jobs", str(args.jobs)]
    if args.threads:
        common += ["--threads", str(args.threads)]
    if args.subjects:
        common += ["--subjects", *map(str, args.subjects)]
    dreamer = args.dreamer
    if args.tiny:
        from physioemo.datasets import make_synthetic_dreamer

        dreamer = out / "tiny_dreamer.mat"
        if not dreamer.exists():
            make_synthetic_dreamer(dreamer, n_subjects=3, n_clips=4, stimulus_seconds=61,
                                   seed=args.seed)
        common += ["--epochs", "1", "--steps-per-epoch", "1", "--finetune-epochs", "1",
                   "--threads", "1", "--cache-dir", str(out / "cache")]
        if not args.subjects:
            common += ["--subjects", "1"]
    run_dirs, seconds = {}, {}
    for protocol in args.protocols:
        for dimension in args.dimensions:
            run_dir = out / f"{protocol}-{dimension}"
            run_dirs[(protocol, dimension)] = run_dir
            if args.report_only:
                continue
            t0 = time.perf_counter()
            run_command(["evaluate", "--dreamer", str(dreamer), "--protocol", protocol,
                         "--dimension", dimension, "--out", str(run_dir), "-q", *common],
                        check=True)
            seconds[(protocol, dimension)] = time.perf_counter() - t0
    from physioemo.evaluation.report import build_report

    run_dirs = {k: v for k, v in run_dirs.items() if (v / "results.jsonl").exists()}
    if not run_dirs:
        sys.exit(f"no results in {out}; run without --report-only first")
    paths = build_report(list(run_dirs.values()), out,
                         title="HiSTN on DREAMER: the paper's SD and SI tables",
                         notes=["Generated tiny DREAMER-format file: numbers are meaningless."]
                         if args.tiny else ())
    table = comparison(run_dirs, seconds)
    (out / "paper_comparison.md").write_text(table)
    print("\n" + table + f"\nreport: {paths['html']}\ntables: {paths['md']}, {paths['csv']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
