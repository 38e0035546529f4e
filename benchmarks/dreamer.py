"""DREAMER load + 1-s windows + band DE: physioemo vs TorchEEG vs plain SciPy.

One command runs every contender, each in a fresh child process of this one (so that each
peak memory, ``ru_maxrss``, is its own), on the same full-size DREAMER-layout file, and
writes ``benchmarks/results/dreamer.md``:

    .venv/bin/python benchmarks/dreamer.py [--path DREAMER.mat] [--only NAME ...]

Without ``--path`` a full-size stand-in (23 subjects x 18 clips, DREAMER clip lengths,
~2 GB) is generated once in ``--workdir``. The job, as TorchEEG's ``DREAMERDataset`` does
it: every stimulus cut into non-overlapping 128-sample windows (``end <= n_times``), and
per window and channel the differential entropy of four bands (theta 4-8, alpha 8-14,
beta 14-31, gamma 31-49 Hz).

Contenders
----------
physioemo-lazy / physioemo-eager
    ``load_dreamer(lazy=True/False)`` + ``dreamer_features(ecg=False)`` (DE from the
    detrended Hann periodogram, :mod:`physioemo.dsp`).
physioemo-ecg
    the same plus R peaks and heart rate/HRV per window from the ECG.
physioemo-histn
    the HiSTN path: ``load_preprocessed`` (cache miss) + ``make_windows``; then a cache hit.
scipy-vectorised
    ``loadmat`` once + TorchEEG's recipe vectorised over all windows of a clip
    (order-5 Butterworth ``lfilter`` from a zero state on each raw window, then
    ``0.5 * log2(2 pi e var)``).
torcheeg
    ``torcheeg.datasets.DREAMERDataset(offline_transform=BandDifferentialEntropy())``,
    ``num_worker=0``, fresh ``io_path`` (its processing time is the constructor). Needs
    ``pip install --no-deps torcheeg`` plus its import-time dependencies (see the notes in
    the results file).

Results of each contender are merged into ``--json`` so contenders can be (re)run one at a
time with ``--only``; the Markdown table is rebuilt from that file every time.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
TORCHEEG_BANDS = {"theta": (4, 8), "alpha": (8, 14), "beta": (14, 31), "gamma": (31, 49)}
CONTENDERS = ("physioemo-lazy", "physioemo-eager", "physioemo-ecg", "physioemo-histn",
              "scipy-vectorised", "torcheeg")


def _rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


# ----------------------------------------------------------------------------- children

def child_physioemo(path, out, lazy, ecg):
    from physioemo.datasets import load_dreamer
    from physioemo.datasets.features import dreamer_features, eeg_band_features

    tw = time.perf_counter()  # Numba kernels: load from cache or compile, once per process
    eeg_band_features(np.random.default_rng(0).standard_normal((2, 14, 128)))
    if ecg:
        from physioemo.datasets.features import detect_r_peaks

        detect_r_peaks(np.random.default_rng(0).standard_normal(2560), 256)
    warm = time.perf_counter() - tw
    rss0 = _rss_mb()
    t0 = time.perf_counter()
    d = load_dreamer(path, lazy=lazy)
    t1 = time.perf_counter()
    de, heart, meta = dreamer_features(d, bands=TORCHEEG_BANDS, ecg=ecg)
    t2 = time.perf_counter()
    if not ecg:
        np.save(out / "physioemo_de.npy", de)
        np.save(out / "physioemo_meta.npy", np.stack([meta["subject"], meta["clip"],
                                                      meta["start"]]))
    res = {"load_s": t1 - t0, "features_s": t2 - t1, "total_s": t2 - t0, "jit_warmup_s": warm,
           "n_windows": int(de.shape[0]), "rss_import_mb": rss0, "rss_peak_mb": _rss_mb()}
    if ecg:
        res["heart_rate_mean_bpm"] = float(np.nanmean(heart[:, 0]))
        res["heart_nan_fraction"] = float(np.isnan(heart[:, 0]).mean())
    return res


def child_histn(path, out):
    import tempfile

    from physioemo.datasets import load_preprocessed, make_windows

    rss0 = _rss_mb()
    with tempfile.TemporaryDirectory(dir=out) as cache:
        t0 = time.perf_counter()
        data, labels = load_preprocessed(path, cache_dir=cache)
        t1 = time.perf_counter()
        X, meta = make_windows(data, labels)
        t2 = time.perf_counter()
        del data, labels, X
        load_preprocessed(path, cache_dir=cache)
        t3 = time.perf_counter()
    return {"load_s": t1 - t0, "features_s": t2 - t1, "total_s": t2 - t0,
            "cache_hit_s": t3 - t2, "n_windows": int(meta["subject"].size),
            "rss_import_mb": rss0, "rss_peak_mb": _rss_mb()}


def child_scipy(path, out):
    import scipy.io
    from scipy.signal import butter, lfilter

    rss0 = _rss_mb()
    t0 = time.perf_counter()
    mat = scipy.io.loadmat(path, verify_compressed_data_integrity=False)
    t1 = time.perf_counter()
    data = mat["DREAMER"][0, 0]["Data"]
    filters = [butter(5, [lo / 64, hi / 64], btype="band") for lo, hi in TORCHEEG_BANDS.values()]
    parts = []
    for s in range(data.shape[1]):
        stimuli = data[0, s]["EEG"][0, 0]["stimuli"][0, 0]
        for j in range(stimuli.shape[0]):
            x = stimuli[j, 0].T  # (14, n)
            n_win = x.shape[1] // 128
            w = x[:, :n_win * 128].reshape(14, n_win, 128).transpose(1, 0, 2)
            de = np.empty((n_win, 14, len(filters)))
            for b, (bb, aa) in enumerate(filters):
                de[..., b] = 0.5 * np.log2(2 * np.pi * np.e * lfilter(bb, aa, w, axis=-1).var(-1))
            parts.append(de)
    de = np.concatenate(parts)
    t2 = time.perf_counter()
    np.save(out / "scipy_de.npy", de)
    return {"load_s": t1 - t0, "features_s": t2 - t1, "total_s": t2 - t0,
            "n_windows": int(de.shape[0]), "rss_import_mb": rss0, "rss_peak_mb": _rss_mb()}


def child_torcheeg(path, out):
    import shutil

    from torcheeg import transforms
    from torcheeg.datasets import DREAMERDataset

    rss0 = _rss_mb()
    io_path = out / "torcheeg_io"
    shutil.rmtree(io_path, ignore_errors=True)
    kwargs = {}
    t0 = time.perf_counter()
    ds = DREAMERDataset(io_path=str(io_path), mat_path=str(path), chunk_size=128, overlap=0,
                        num_channel=14, num_baseline=61, baseline_chunk_size=128,
                        offline_transform=transforms.BandDifferentialEntropy(
                            sampling_rate=128, band_dict={k: list(v) for k, v in
                                                          TORCHEEG_BANDS.items()}),
                        online_transform=None, label_transform=None, num_worker=0,
                        verbose=False, **kwargs)
    t1 = time.perf_counter()
    info = ds.info
    n = len(ds)
    de = np.empty((n, 14, len(TORCHEEG_BANDS)))
    for i in range(n):
        de[i] = np.asarray(ds[i][0])
    t2 = time.perf_counter()
    meta = np.stack([info["subject_id"].to_numpy(), info["trial_id"].to_numpy(),
                     info["start_at"].to_numpy()]).astype(np.int64)
    np.save(out / "torcheeg_de.npy", de)
    np.save(out / "torcheeg_meta.npy", meta)
    shutil.rmtree(io_path, ignore_errors=True)
    return {"load_s": None, "features_s": None, "total_s": t1 - t0, "read_back_s": t2 - t1,
            "n_windows": n, "rss_import_mb": rss0, "rss_peak_mb": _rss_mb()}


def run_child(name, args):
    out = Path(args.workdir)
    path = Path(args.path)
    if name == "physioemo-lazy":
        return child_physioemo(path, out, lazy=True, ecg=False)
    if name == "physioemo-eager":
        return child_physioemo(path, out, lazy=False, ecg=False)
    if name == "physioemo-ecg":
        return child_physioemo(path, out, lazy=True, ecg=True)
    if name == "physioemo-histn":
        return child_histn(path, out)
    if name == "scipy-vectorised":
        return child_scipy(path, out)
    if name == "torcheeg":
        return child_torcheeg(path, out)
    raise SystemExit(f"unknown contender {name}")


# ----------------------------------------------------------------------------- parent

def sample_bytes(path):
    from physioemo.datasets import load_dreamer

    d = load_dreamer(path, lazy=True)
    total = 0
    for s in d.subjects:
        for arrs in (s.eeg_baseline, s.eeg_stimulus, s.ecg_baseline, s.ecg_stimulus):
            total += sum(a.size * 8 for a in arrs)
    return total


def agreement(workdir):
    out = {}
    w = Path(workdir)
    files = {k: w / f"{k}_de.npy" for k in ("physioemo", "scipy", "torcheeg")}
    have = {k: np.load(p, mmap_mode="r") for k, p in files.items() if p.exists()}
    if "physioemo" not in have:
        return out
    pm = np.load(w / "physioemo_meta.npy")
    if "torcheeg" in have:
        tm = np.load(w / "torcheeg_meta.npy")
        key_p = {tuple(r): i for i, r in enumerate(pm.T)}
        idx = np.array([key_p.get(tuple(r), -1) for r in tm.T])
        out["torcheeg_windows_matched"] = int((idx >= 0).sum())
        out["torcheeg_windows"] = int(tm.shape[1])
        out["physioemo_windows"] = int(pm.shape[1])
        if "scipy" in have and (idx >= 0).all():
            diff = np.abs(have["torcheeg"] - have["scipy"][idx])
            out["torcheeg_vs_scipy_max_abs_diff"] = float(diff.max())
    return out


def dc_correlation(path, workdir):
    """Correlation of alpha-band DE with the raw window mean, per contender."""
    from physioemo.datasets import load_dreamer

    w = Path(workdir)
    pm = np.load(w / "physioemo_meta.npy")
    d = load_dreamer(path, lazy=True)
    rng = np.random.default_rng(0)
    pick = rng.choice(pm.shape[1], size=min(20000, pm.shape[1]), replace=False)
    means = np.array([d.subjects[s].eeg_stimulus[c][0, t:t + 128].mean()
                      for s, c, t in pm[:, pick].T])
    groups = pm[0, pick] * 1000 + pm[1, pick]

    def demean(v):
        _, inv = np.unique(groups, return_inverse=True)
        return v - (np.bincount(inv, v) / np.bincount(inv))[inv]

    res = {}
    for k in ("physioemo", "scipy"):
        p = w / f"{k}_de.npy"
        if p.exists():
            de = np.asarray(np.load(p, mmap_mode="r")[pick, 0, 1])  # channel AF3, alpha
            res[k] = float(np.corrcoef(de, means)[0, 1])
            res[k + " within-clip"] = float(np.corrcoef(demean(de), demean(means))[0, 1])
    return res


def _row(name, x, ref_tg, ref_sc, sb):
    def f(v, fmt="{:.2f}"):
        return "" if v is None else fmt.format(v)

    if "error" in x:
        return f"| {name} | failed: {x['error']} | | | | | | | | |"
    return (f"| {name} | {x['n_windows']} | {f(x.get('load_s'))} | {f(x.get('features_s'))} | "
            f"{f(x['total_s'])} | {f(ref_tg / x['total_s'] if ref_tg else None, '{:.0f}x')} | "
            f"{f(ref_sc / x['total_s'] if ref_sc else None, '{:.2f}x')} | "
            f"{x['rss_peak_mb']:.0f} | {x['rss_peak_mb'] * 2**20 / sb:.2f} | "
            f"{f(x.get('jit_warmup_s'))} |")


def write_markdown(db, path_md):
    r = db["results"]
    head = ["| contender | windows | load s | features s | total s | x TorchEEG | x scipy | "
            "peak RSS MB | peak / sample bytes | Numba warm-up s (excluded) |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    tags = sorted({k.split("@")[1] for k in r})
    lines = ["# DREAMER: load + 1-s windows + band DE (physioemo vs TorchEEG vs SciPy)", "",
             f"Command: `{db.get('command')}`  ",
             f"Machine: {db.get('machine')}; timings are wall-clock seconds of one run each.",
             "", "Job (TorchEEG `DREAMERDataset` defaults): every stimulus in non-overlapping "
             "128-sample windows, DE of theta 4-8, alpha 8-14, beta 14-31, gamma 31-49 Hz per "
             "window and channel. Peak RSS is `ru_maxrss` of each contender's own process "
             "(a floor of the parent's "
             f"{db.get('parent_rss_mb', 0):.0f} MB is inherited through fork+exec); "
             "memory-mapped file pages that were read count as resident.", ""]
    subset_tg = None
    full_w = r.get("physioemo-lazy@full", {}).get("n_windows")
    for tag in tags:
        t = r.get(f"torcheeg@{tag}", {})
        if tag != "full" and t.get("total_s") and full_w:
            subset_tg = t["total_s"] * full_w / t["n_windows"]
    for tag in tags:
        if tag == "full":
            fb, sb = db.get("file_bytes", 0), db.get("sample_bytes") or 1
            lines.append(f"## Full-size file `{db.get('file')}`: {fb / 1e9:.2f} GB, "
                         f"{sb / 1e9:.2f} GB of float64 samples")
        else:
            sb = db.get("subset_sample_bytes") or 1
            lines.append(f"## First {tag[6:]} subjects (`{db.get('subset_file')}`, "
                         f"{sb / 1e9:.2f} GB of samples): the file TorchEEG ran on")
        lines += ["", *head]
        tg = r.get(f"torcheeg@{tag}", {}).get("total_s")
        sc = r.get(f"scipy-vectorised@{tag}", {}).get("total_s")
        if tag == "full" and tg is None and subset_tg:
            tg = subset_tg
        for name in CONTENDERS:
            if f"{name}@{tag}" in r:
                lines.append(_row(name, r[f"{name}@{tag}"], tg, sc, sb))
        lines.append("")
    if subset_tg:
        lines.append(f"TorchEEG on the full file is **extrapolated**, not measured: "
                     f"{subset_tg:.0f} s = its subset time x (full windows / subset windows). "
                     "This under-estimates it: TorchEEG re-reads the whole .mat once per "
                     "subject (23 x a 2 GB loadmat on the full file vs 3 x a small one here). "
                     "The 'x TorchEEG' column of the full-file table divides by this "
                     "extrapolation.")
        lines.append("")
    h = r.get("physioemo-histn@full")
    if h and "cache_hit_s" in h:
        lines.append(f"- physioemo-histn: HiSTN preprocessing (last 60 s, baseline z-score, "
                     f"max-abs) + 1-s windows ({h['n_windows']} windows) via the on-disk "
                     f"cache: miss {h['total_s']:.2f} s, hit {h['cache_hit_s']:.2f} s.")
    e = r.get("physioemo-ecg@full")
    if e and "heart_rate_mean_bpm" in e:
        lines.append(f"- physioemo-ecg also finds R peaks and heart rate/SDNN/RMSSD per window: "
                     f"mean HR {e['heart_rate_mean_bpm']:.1f} bpm, "
                     f"{100 * e['heart_nan_fraction']:.2f} % windows without enough beats (NaN).")
    for tag in tags:
        t = r.get(f"torcheeg@{tag}")
        if t and "read_back_s" in t:
            lines.append(f"- TorchEEG ({tag}): reading its {t['n_windows']} windows back from "
                         f"LMDB took another {t['read_back_s']:.1f} s (not counted).")
    for tag, ag in db.get("agreement", {}).items():
        if ag:
            lines.append(f"- Same windows ({tag}): {json.dumps(ag)} (window key = subject, "
                         "clip, start sample; DE difference TorchEEG vs scipy-vectorised).")
    for tag, dc in db.get("dc_correlation", {}).items():
        lines.append(f"- DC offset ({tag}): correlation of AF3 alpha DE with the raw window "
                     "mean over 20,000 random windows, pooled and within clip (both centred "
                     "per subject and clip; pooled values also carry between-subject "
                     "differences of the stand-in's random offsets and gains): "
                     + ", ".join(f"{k} {v:+.3f}" for k, v in dc.items())
                     + " (TorchEEG = scipy-vectorised exactly, see above).")
    lines += ["", *[f"- {n}" for n in db.get("notes", [])]]
    path_md.write_text("\n".join(lines) + "\n")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--path", default=None, help="DREAMER-layout file (default: generate)")
    p.add_argument("--workdir", default="/tmp/physioemo-bench-dreamer")
    p.add_argument("--only", nargs="*", choices=CONTENDERS, default=None)
    p.add_argument("--json", default=str(RESULTS / "dreamer.json"))
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    p.add_argument("--note", action="append", default=[], help="note added to the table")
    p.add_argument("--torcheeg-subjects", type=int, default=None, metavar="N",
                   help="run TorchEEG (with scipy and physioemo beside it) on a file of the "
                        "first N subjects only; its full-file time is then extrapolated")
    p.add_argument("--torcheeg-pythonpath", default=None,
                   help="PYTHONPATH for the torcheeg child only (its extra dependencies)")
    args = p.parse_args(argv)
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    if args.child:
        res = run_child(args.child, args)
        print("RESULT " + json.dumps(res))
        return 0
    if args.path is None:
        args.path = str(work / "DREAMER-synthetic-full.mat")
        if not Path(args.path).exists():
            t = time.perf_counter()
            subprocess.run([sys.executable, "-c", "from physioemo.datasets import "
                            f"make_synthetic_dreamer as m; m({args.path!r}, seed=0)"],
                           check=True)
            print(f"generated {args.path} in {time.perf_counter() - t:.1f} s")
    jpath = Path(args.json)
    db = json.loads(jpath.read_text()) if jpath.exists() else {"results": {}, "notes": []}
    db["file"] = str(args.path)
    db["file_bytes"] = Path(args.path).stat().st_size
    db["sample_bytes"] = sample_bytes(args.path)
    db["machine"] = (f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
                     "shared with other jobs")
    if args.only != []:
        db["command"] = ".venv/bin/python benchmarks/dreamer.py " + " ".join(
            argv or sys.argv[1:])
    for n in args.note:
        if n not in db["notes"]:
            db["notes"].append(n)
    todo = CONTENDERS if args.only is None else args.only  # --only alone: re-render
    runs = [(name, "full", args.path) for name in todo
            if not (name == "torcheeg" and args.torcheeg_subjects)]
    if args.torcheeg_subjects and "torcheeg" in todo:
        sub = work / f"DREAMER-synthetic-{args.torcheeg_subjects}subjects.mat"
        if not sub.exists():  # the generator is prefix-stable: same first subjects
            # in a child: ru_maxrss survives fork+exec, so the parent must stay small
            subprocess.run([sys.executable, "-c", "from physioemo.datasets import "
                            f"make_synthetic_dreamer as m; m({str(sub)!r}, n_subjects="
                            f"{args.torcheeg_subjects}, seed=0)"], check=True)
        db["subset_file"] = str(sub)
        db["subset_sample_bytes"] = sample_bytes(sub)
        tag = f"subset{args.torcheeg_subjects}"
        runs += [(n, tag, sub) for n in ("torcheeg", "scipy-vectorised", "physioemo-lazy")]
    # children inherit the parent's ru_maxrss through fork+exec: record that floor
    db["parent_rss_mb"] = _rss_mb()
    for name, tag, fpath in runs:
        print(f"running {name} on {tag} ...", flush=True)
        sub_work = work / tag
        sub_work.mkdir(exist_ok=True)
        cmd = [sys.executable, __file__, "--child", name, "--path", str(fpath),
               "--workdir", str(sub_work)]
        env = dict(os.environ)
        if name == "torcheeg" and args.torcheeg_pythonpath:
            env["PYTHONPATH"] = args.torcheeg_pythonpath
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
        line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
        when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M")
        if proc.returncode or not line:
            err = (proc.stderr.strip().splitlines() or ["no output"])[-1][:200]
            db["results"][f"{name}@{tag}"] = {"error": err, "when": when}
            print(f"  {name} failed: {err}")
        else:
            db["results"][f"{name}@{tag}"] = dict(json.loads(line[-1][7:]), when=when)
            print(f"  {db['results'][f'{name}@{tag}']}")
        jpath.parent.mkdir(parents=True, exist_ok=True)
        jpath.write_text(json.dumps(db, indent=1))
    db["agreement"] = {}
    for tag_dir in sorted(work.iterdir()):
        if tag_dir.is_dir() and (tag_dir / "physioemo_meta.npy").exists():
            fpath = args.path if tag_dir.name == "full" else db.get("subset_file")
            db["agreement"][tag_dir.name] = agreement(tag_dir)
            db.setdefault("dc_correlation", {})[tag_dir.name] = dc_correlation(fpath, tag_dir)
    jpath.write_text(json.dumps(db, indent=1))
    write_markdown(db, RESULTS / "dreamer.md")
    print((RESULTS / "dreamer.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
