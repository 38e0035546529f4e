"""How much the normalisation form changes HiSTN's F1: ``paper`` versus ``causal``.

The honest learning check's setting (tests/evaluation/test_protocols.py, ``STRICT_*``): one
generated subject with 36 clips of 62 s and the planted effect, high-passed at 2 Hz,
``sd-strict`` over all 6 folds (whole clips held out), the quick recipe (25 epochs x 40
batches of 64, lr 3e-3), valence, seeds 0 and 1. The data are preprocessed twice, once per
form (:mod:`physioemo.datasets.preprocessing`); everything else, folds and seeds included,
is the same. The baselines run beside HiSTN on the same windows of each form.

Writes benchmarks/results/normalization.md (or --out). Usage::

    .venv/bin/python benchmarks/normalization.py     # ~3-4 min on 2 cores
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

from physioemo.datasets import load_preprocessed, make_synthetic_dreamer
from physioemo.evaluation.protocols import run_protocol

FILE = {"n_subjects": 1, "n_clips": 36, "stimulus_seconds": 62.0, "seed": 0}
RUN = {"epochs": 25, "steps_per_epoch": 40, "overrides": {"batch_size": 64, "lr": {0: 3e-3}},
       "n_threads": 2, "verbose": False, "save_checkpoints": False}
FORMS = ("paper", "causal")
SHOWN = ("majority", "stratified", "classic", "probe")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" /
                                         "normalization.md"))
    args = ap.parse_args(argv)
    rows = {}
    t0 = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        path = make_synthetic_dreamer(Path(tmp) / "dreamer.mat", **FILE)
        for form in FORMS:
            data, labels = load_preprocessed(path, cache_dir=Path(tmp) / "cache",
                                             l_freq=2.0, normalization=form)
            recs = [r for seed in args.seeds
                    for r in run_protocol("sd-strict", data, labels, seed=seed,
                                          normalization=form, **RUN)]
            rows[form] = {"histn": [r["metrics"]["weighted_f1"] for r in recs],
                          **{b: [r["baselines"][b]["metrics"]["weighted_f1"] for r in recs]
                             for b in SHOWN}}
            print(form, {k: round(float(np.mean(v)), 1) for k, v in rows[form].items()},
                  flush=True)
    elapsed = time.time() - t0
    diff = np.subtract(rows["causal"]["histn"], rows["paper"]["histn"])
    load = " / ".join(f"{x:.2f}" for x in os.getloadavg())
    lines = [
        "# Normalisation form: paper versus causal",
        "",
        f"`python benchmarks/normalization.py` on {platform.node()} ({os.cpu_count()} cores, "
        f"Python {sys.version.split()[0]}); {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}"
        f"; load average {load}; {elapsed:.0f} s.",
        "",
        f"One generated subject (36 clips x 62 s, seed 0, planted effect), high-passed at "
        f"2 Hz, `sd-strict` over its 6 folds, quick recipe (25 epochs x 40 batches of 64, lr "
        f"3e-3), valence, seeds {', '.join(map(str, args.seeds))}: mean weighted F1 (%) over "
        f"{len(diff)} fold runs, ± std over them. `paper` divides each 60-s clip by its "
        "max-abs (transductive); `causal` divides by the max-abs of the z-scored baseline.",
        "",
        "| form | HiSTN | " + " | ".join(SHOWN) + " |",
        "|---|---:|" + "---:|" * len(SHOWN),
    ]
    for form in FORMS:
        cells = [f"{np.mean(rows[form][k]):.1f} ± {np.std(rows[form][k]):.1f}"
                 for k in ("histn", *SHOWN)]
        lines.append(f"| {form} | " + " | ".join(cells) + " |")
    lines += ["", f"HiSTN causal minus paper, fold by fold (same folds and seeds): "
                  f"{diff.mean():+.1f} ± {diff.std():.1f} F1 points "
                  f"(standard error {diff.std(ddof=1) / np.sqrt(len(diff)):.1f})."]
    Path(args.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
