"""Benchmark the baselines beside HiSTN: the time they add, and what they score.

Two parts, in one run, on a generated DREAMER-format file (``make_synthetic_dreamer``, the
same generator as ``physioemo synth-dreamer``):

(a) **Time.** A small real ``sd`` run: physioemo HiSTN (graph G0, the recipe's batch and
    steps per epoch, ``--epochs`` epochs instead of 50) on the first subject's first folds,
    with the baselines on. Per fold: HiSTN's training + test seconds (``train_seconds`` +
    ``test_seconds`` of the record) beside the seconds of all baselines together (the sum
    of their ``seconds``), and the ratio. The projection to the recipe's 50 epochs scales
    the training seconds linearly (the baselines do not depend on the epoch count).
(b) **Scores.** Every baseline's and the probe's weighted F1 under ``sd`` and
    ``sd-strict`` for valence and arousal, every subject and fold, mean ± std over
    subjects (folds averaged first), with the ECG R peaks of the file so ``physio`` runs.
    These need no trained HiSTN (the baselines fit on the fold's windows only), so a
    one-step stand-in model is passed to ``run_protocol`` to keep the folds and windows
    exactly those of a real run.

Writes benchmarks/results/baselines.md (or --out). Usage::

    .venv/bin/python benchmarks/baselines.py              # ~5-8 min on 2 cores
    .venv/bin/python benchmarks/baselines.py --quick      # smoke run
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from physioemo.datasets import load_preprocessed, make_synthetic_dreamer
from physioemo.datasets.cache import load_r_peaks
from physioemo.evaluation.baselines import BASELINES, MAX_TRAIN_WINDOWS
from physioemo.evaluation.protocols import run_protocol


class _Stub(nn.Module):
    """One linear layer on log-power: only there so run_protocol builds the folds."""

    def __init__(self, n_channels, n_outputs):
        super().__init__()
        self.lin = nn.Linear(n_channels, n_outputs)
        self.config = {}

    def forward(self, x):
        return self.lin(x.pow(2).mean(-1).log1p())


def _stub_fn(n_outputs, dropout, graph, n_channels, n_times):
    return _Stub(n_channels, n_outputs)


def _f1(rec, name):
    b = rec["baselines"][name]
    return b["metrics"]["weighted_f1"] if "metrics" in b else np.nan


def _subject_stats(recs, name):
    per = {}
    for r in recs:
        per.setdefault(r["subject"], []).append(_f1(r, name))
    vals = np.array([np.mean(v) for v in per.values()])
    return float(np.mean(vals)), float(np.std(vals)), len(vals)


def main(argv=None):
    """Run the benchmark and write the Markdown table."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--subjects", type=int, default=4, help="subjects in the file (4)")
    ap.add_argument("--seconds", type=float, default=70.0, help="stimulus length (70)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--epochs", type=int, default=3, help="HiSTN epochs in part (a) (3)")
    ap.add_argument("--folds", type=int, default=2, help="sd folds timed in part (a) (2)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--quick", action="store_true", help="smoke run (tiny)")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "baselines.md"))
    args = ap.parse_args(argv)
    if args.quick:
        args.subjects, args.seconds, args.epochs, args.folds = 2, 62.0, 1, 1
    torch.set_num_threads(args.threads)
    load_before = os.getloadavg()
    t_start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "dreamer.mat"
        make_synthetic_dreamer(path, n_subjects=args.subjects,
                               stimulus_seconds=args.seconds, seed=args.seed)
        data, labels = load_preprocessed(path, cache_dir=Path(tmp) / "cache")
        ecg = load_r_peaks(path, cache_dir=Path(tmp) / "cache")

        # (a) time added to a real sd run
        timing = run_protocol("sd", data, labels, subjects=[0], folds=list(range(args.folds)),
                              epochs=args.epochs, n_threads=args.threads, verbose=False,
                              save_checkpoints=False, seed=args.seed, ecg=ecg)
        # (b) scores under sd and sd-strict
        scores = {}
        quick = {"epochs": 1, "steps_per_epoch": 1, "model_fn": _stub_fn, "n_threads": 1,
                 "verbose": False, "seed": args.seed, "ecg": ecg}
        for protocol in ("sd", "sd-strict"):
            for dim in ("valence", "arousal"):
                folds = [0, 1] if args.quick else None
                scores[protocol, dim] = run_protocol(protocol, data, labels, dimension=dim,
                                                     folds=folds, **quick)
    total = time.perf_counter() - t_start
    load_after = os.getloadavg()

    lines = ["# Baselines beside HiSTN: time added and scores", "",
             "Command: `" + " ".join([".venv/bin/python", f"benchmarks/{Path(__file__).name}",
                                     *(argv if argv is not None else sys.argv[1:])]) + "`",
             f"Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; "
             f"{platform.machine()}, {os.cpu_count()} cores; torch {torch.__version__}; "
             f"{args.threads} thread(s); total {total:.0f} s.",
             f"Load average before/after: {load_before[0]:.1f} / {load_after[0]:.1f} (a load "
             "above the core count means a shared machine: absolute times are pessimistic).",
             f"Data: generated DREAMER-format file, {args.subjects} subjects x 18 clips x "
             f"{args.seconds:g} s, seed {args.seed} (`physioemo synth-dreamer --out dreamer.mat "
             f"--subjects {args.subjects} --stimulus-seconds {args.seconds:g} --seed "
             f"{args.seed}`), HiSTN "
             "preprocessing (last 60 s, baseline z-score, max-abs).",
             f"Fitted baselines use at most {MAX_TRAIN_WINDOWS} training windows per fold "
             "(seeded subsample); every test window is scored.", "",
             "## (a) Time the baselines add to an `sd` fold", "",
             f"physioemo HiSTN, subject 1, {args.epochs} epoch(s) of the recipe's 256-window "
             "batches and steps per epoch (50 in the recipe).", "",
             "| fold | HiSTN train + test (s) | baselines (s) | ratio | projected to 50 epochs "
             "| per baseline (s) |", "|---:|---:|---:|---:|---:|---|"]
    ratios, proj = [], []
    for r in timing:
        hist = r["train_seconds"] + r["test_seconds"]
        base = sum(b.get("seconds", 0.0) for b in r["baselines"].values())
        full = r["train_seconds"] * 50 / args.epochs + r["test_seconds"]
        ratios.append(base / hist)
        proj.append(base / full)
        each = ", ".join(f"{k} {v['seconds']:.2f}" for k, v in r["baselines"].items()
                         if "seconds" in v)
        lines.append(f"| {r['fold']} | {hist:.1f} | {base:.2f} | {100 * base / hist:.1f} % "
                     f"| {100 * base / full:.2f} % | {each} |")
    lines += ["", f"Baselines add {100 * np.mean(ratios):.1f} % to these {args.epochs}-epoch "
              f"folds and {100 * np.mean(proj):.2f} % projected to the recipe's 50 epochs "
              "(mean over folds; the first fold also pays one-off imports and numba "
              "compilation).", "",
              "## (b) Weighted F1 (%) of the baselines and the shortcut probe", "",
              "Mean ± std over subjects (folds averaged first); chance-level references are "
              "majority and stratified. The probe sees only per-window channel means and "
              "slopes (5-NN).", "",
              "| protocol | dimension | " + " | ".join(BASELINES) + " |",
              "|---|---|" + "---:|" * len(BASELINES)]
    for (protocol, dim), recs in scores.items():
        cells = []
        for name in BASELINES:
            m, s, n = _subject_stats(recs, name)
            cells.append("n/a" if np.isnan(m) else f"{m:.1f} ± {s:.1f}")
        lines.append(f"| {protocol} | {dim} | " + " | ".join(cells) + " |")
    probe = {k: _subject_stats(v, "probe")[0] for k, v in scores.items()}
    lines += ["", "Shortcut probe, weighted F1: "
              + "; ".join(f"{p} {d} {v:.1f} %" for (p, d), v in probe.items())
              + ". Under `sd` the probe's channel means identify the clip (the generator's "
              "per-clip drift), which gives the label; under `sd-strict` the test clips are "
              "unseen and it falls to chance.", ""]
    text = "\n".join(lines)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
