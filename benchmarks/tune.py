"""Benchmark `physioemo tune`: storage overhead per trial and trials per hour, 1 vs 2 workers.

One command: `.venv/bin/python benchmarks/tune.py [--trials 100] [--search-trials 8]`
writes benchmarks/results/tune.md.

1. Storage overhead: a trivial objective (3 parameters, 2 intermediate values, one fold's
   metrics as a user attribute, no work) run N times through
   - plain Optuna `study.optimize` (the peer) on in-memory, SQLite, journal file, PostgreSQL;
   - physioemo's worker loop (`run_worker`: study-wide budget lock, heartbeat thread,
     retry callback) on SQLite, journal file, PostgreSQL.
   RandomSampler everywhere, so the sampler's cost does not grow with the trial count.
2. Trials per hour for a fixed small real search (HiSTN, sd-strict, 1 subject, fold 0, 1
   epoch of 4 steps, generated DREAMER file) with `--jobs 1` and `--jobs 2` (journal file
   for both), wall clock of the whole command including start-up and data loading.

PostgreSQL runs in a private server started here (tests/tuning/pg_server.py), with the
durable defaults (fsync on); it is skipped with a note when the binaries are missing.
"""

import argparse
import contextlib
import importlib.util
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import optuna

from physioemo.tuning import study as st

ROOT = Path(__file__).resolve().parents[1]
optuna.logging.set_verbosity(optuna.logging.WARNING)
warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
warnings.filterwarnings("ignore", message="Heartbeat of storage")


def _pg_module():
    spec = importlib.util.spec_from_file_location("pg_server",
                                                  ROOT / "tests" / "tuning" / "pg_server.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def trivial(trial):
    x = trial.suggest_float("sigma", 0.1, 2.0, log=True)
    k = trial.suggest_int("epochs", 1, 50)
    g = trial.suggest_categorical("graph", ["G0", "G1", "G2"])
    trial.report(x, 0)
    trial.report(x + k, 1)
    trial.set_user_attr("s01_f0", {"weighted_f1": x, "seq2hr": float(k), "graph": g})
    return x


def time_plain(storage, n, name):
    study = optuna.create_study(storage=storage, study_name=name, direction="maximize",
                                sampler=optuna.samplers.RandomSampler(seed=0),
                                load_if_exists=True)
    t0 = time.perf_counter()
    study.optimize(trivial, n_trials=n)
    return (time.perf_counter() - t0) / n


def time_physioemo(spec, n, name):
    storage = st.open_storage(spec, heartbeat_interval=60, grace_period=120)
    study = st.create_or_load_study(storage, name,
                                    sampler=optuna.samplers.RandomSampler(seed=0))
    lock = st.budget_lock(spec, name)
    try:
        t0 = time.perf_counter()
        st.run_worker(study, trivial, n_trials=n, lock=lock, retry=st.RetryCallback())
        return (time.perf_counter() - t0) / n
    finally:
        lock.close()


def storage_overhead(n, tmp, pg_url):
    rows = []
    base = time_plain(None, n, "mem")
    rows.append(("in-memory", "plain Optuna", base))
    sqlite_url = f"sqlite:///{tmp}/plain.db"
    rows.append(("SQLite", "plain Optuna", time_plain(sqlite_url, n, "p")))
    rows.append(("SQLite", "plain Optuna + heartbeat",
                 time_plain(optuna.storages.RDBStorage(f"sqlite:///{tmp}/hb.db",
                                                       heartbeat_interval=60), n, "p")))
    rows.append(("SQLite", "physioemo worker",
                 time_physioemo(st.resolve_storage(f"sqlite:///{tmp}/pe.db", tmp), n, "p")))
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    rows.append(("journal file", "plain Optuna",
                 time_plain(JournalStorage(JournalFileBackend(f"{tmp}/plain.journal")), n,
                            "p")))
    rows.append(("journal file", "physioemo worker",
                 time_physioemo(st.resolve_storage(f"{tmp}/pe.journal", tmp), n, "p")))
    if pg_url:
        spec = st.resolve_storage(pg_url, tmp)
        rows.append(("PostgreSQL", "plain Optuna", time_plain(spec.url, n, "plain")))
        rows.append(("PostgreSQL", "plain Optuna + heartbeat",
                     time_plain(optuna.storages.RDBStorage(spec.url, heartbeat_interval=60),
                                n, "hb")))
        rows.append(("PostgreSQL", "physioemo worker", time_physioemo(spec, n, "pe")))
    return base, rows


def search_rate(n_trials, jobs, tmp, dreamer):
    space = Path(tmp) / "space.yaml"
    space.write_text("sigma: {type: float, low: 0.25, high: 2.0, log: true}\n"
                     "graph: {type: categorical, choices: [G0, G1, G2]}\n")
    out = Path(tmp) / f"search-{jobs}"
    cmd = [sys.executable, "-m", "physioemo.cli.main", "tune", "--dreamer", str(dreamer),
           "--cache-dir", str(Path(tmp) / "cache"), "--protocol", "sd-strict",
           "--subjects", "1", "--folds", "0", "--epochs", "1", "--steps-per-epoch", "4",
           "--n-trials", str(n_trials), "--jobs", str(jobs), "--storage",
           str(out / "study.journal"), "--search-space", str(space), "--pruner", "none",
           "--no-plots", "--out", str(out), "-q"]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, cwd=ROOT)
    wall = time.perf_counter() - t0
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    info = json.loads((out / "study.json").read_text())
    study = optuna.load_study(study_name=info["study_name"], storage=JournalStorage(
        JournalFileBackend(str(out / "study.journal"))))
    done = [t for t in study.trials if t.state.name == "COMPLETE"]
    first = min(t.datetime_start for t in done)
    last = max(t.datetime_complete for t in done)
    busy = (last - first).total_seconds()
    mean_trial = sum((t.datetime_complete - t.datetime_start).total_seconds()
                     for t in done) / len(done)
    return {"jobs": jobs, "n": len(done), "wall": wall, "busy": busy,
            "mean_trial": mean_trial}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=100,
                        help="trivial trials per storage (default 100)")
    parser.add_argument("--search-trials", type=int, default=8,
                        help="real HiSTN trials per worker count (default 8)")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "tune.md"))
    args = parser.parse_args()

    pg, server, pg_url, pg_note = _pg_module(), None, None, ""
    bindir, reason = pg.find_bindir()
    if bindir is None:
        pg_note = f"PostgreSQL skipped: {reason}."
    else:
        server = pg.PostgresServer(bindir, fast=False)
        try:
            server.start()
            pg_url = server.url()
        except Exception as err:  # report, don't crash the whole benchmark
            pg_note = f"PostgreSQL skipped: the server did not start ({err})."
            server.stop()
            server = None
    try:
        with tempfile.TemporaryDirectory(prefix="physioemo-bench-tune-") as tmp:
            base, rows = storage_overhead(args.trials, tmp, pg_url)
            from physioemo.datasets import make_synthetic_dreamer

            dreamer = Path(tmp) / "dreamer.mat"
            with contextlib.redirect_stderr(open(os.devnull, "w")):
                make_synthetic_dreamer(dreamer, n_subjects=2, n_clips=18,
                                       stimulus_seconds=60, seed=0)
            rates = [search_rate(args.search_trials, jobs, tmp, dreamer) for jobs in (1, 2)]
    finally:
        if server is not None:
            server.stop()

    lines = ["# `physioemo tune` benchmark", "",
             f"Command: `.venv/bin/python benchmarks/tune.py --trials {args.trials} "
             f"--search-trials {args.search_trials}`  ",
             f"Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; machine: "
             f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
             f"Python {platform.python_version()}, Optuna {optuna.__version__}; 1-minute "
             f"load average at the end {os.getloadavg()[0]:.1f} (above the core count: "
             "shared, absolute times noisy).", "",
             "## Storage overhead per trial (trivial objective, RandomSampler)", "",
             f"{args.trials} trials each, one process. Overhead = time per trial minus the "
             f"in-memory time ({base * 1e3:.2f} ms).", "",
             "| storage | runner | ms / trial | overhead ms / trial | x in-memory |",
             "|---|---|---:|---:|---:|"]
    for storage, runner, sec in rows:
        lines.append(f"| {storage} | {runner} | {sec * 1e3:.2f} | {(sec - base) * 1e3:.2f} | "
                     f"{sec / base:.1f} |")
    if pg_note:
        lines += ["", pg_note]
    lines += ["", "physioemo's worker adds, per trial: one study-wide lock (flock / PostgreSQL "
              "advisory lock / in-process), a read of all trials to count the budget, a "
              "heartbeat thread (one write at start, then every 60 s), and a `lineage` "
              "user attribute on retried trials only. The PostgreSQL server runs with fsync "
              "on (durable defaults).",
              "", "## Trials per hour, fixed small search", "",
              f"{args.search_trials} HiSTN trials (sd-strict, subject 1, fold 0, 1 epoch x 4 "
              "steps, generated 2-subject DREAMER file, journal storage). Wall = the whole "
              "command (start-up, data loading, workers); busy = first trial start to last "
              "trial end.", "",
              "| workers | trials | wall s | trials / hour (wall) | busy s | "
              "trials / hour (busy) | mean s / trial |",
              "|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rates:
        lines.append(f"| {r['jobs']} | {r['n']} | {r['wall']:.1f} | "
                     f"{r['n'] / r['wall'] * 3600:.0f} | {r['busy']:.1f} | "
                     f"{r['n'] / r['busy'] * 3600:.0f} | {r['mean_trial']:.2f} |")
    speed = rates[0]["wall"] / rates[1]["wall"]
    lines += ["", f"2 workers vs 1: {speed:.2f}x by wall clock, "
              f"{rates[0]['busy'] / rates[1]['busy']:.2f}x by busy time (2 cores; with "
              "--jobs 2 each worker gets 1 torch thread instead of 2)."]
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
