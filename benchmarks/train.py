"""Benchmark HiSTN training and inference: physioemo's fused model vs the literal layers.

All models are the same physioemo HiSTN (graph G0, same initial weights). physioemo's runs
on the CPU through its fused Numba kernels (:mod:`physioemo.models.layers._fused`: the
fused 64-tap filter, BatchNorm, ELU, taps, pooling, dropout, the node level and the region
and global levels in three forward/backward pairs). The C kernels they replaced (issue 14)
were timed side by side with them in the same process before their deletion (with the code
of commit 094fc7d, the last with them; that table stays in the history of
benchmarks/results/train.md). The "PyTorch operators
only" row is the same model with the kernels off (the fused banded matmul and PyTorch
layers); the peer runs the temporal head literally (conv2d with the 8 shared 64-tap
kernels, then per-electrode mixing, as the Keras reference does) with PyTorch layers. A
training step is forward + Gaussian-smoothed soft cross-entropy + backward + Adam +
``apply_constraints()``, batch 256. The contenders are timed in alternating rounds in one
process (the median round is reported) and physioemo's and the literal model's logits and
gradients are compared.

The TensorFlow/Keras reference cannot run here (no TensorFlow); its ~4,200 windows/s at batch
256 with 2 threads (24.3 s per 423-step epoch) is the figure quoted in shared/peers.md,
measured on this machine kind. The projected wall time of one subject's ``sd`` protocol
counts training steps only: 10 folds x 50 epochs x ``(n_train_starts * 18) // 256`` steps
(histn-spec §5.1), plus, for physioemo, the measured forward pass over 2000 validation
windows per epoch.

Writes benchmarks/results/train.md (or --out). Usage::

    .venv/bin/python benchmarks/train.py                  # CPU, 2 threads (~2-4 min)
    .venv/bin/python benchmarks/train.py --threads 1 --out benchmarks/results/train-1thread.md
    .venv/bin/python benchmarks/train.py --quick          # smoke run
    .venv/bin/python benchmarks/train.py --device cuda --out benchmarks/results/train-cuda.md
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

from physioemo.models import HiSTN
from physioemo.training.losses import gaussian_targets, soft_cross_entropy

REFERENCE_KERAS_WPS = 4200.0  # shared/peers.md: TF/Keras, batch 256, 2 threads
REFERENCE_LATENCY_MS = {"Keras eager": 24.0, "Keras predict_on_batch": 6.2,
                        "Keras tf.function": 1.7}
CLIP, BLOCK, WIN, N_CLIPS, EPOCHS, FOLDS = 7680, 768, 128, 18, 50, 10


_COMPILE_SNIPPET = """
import time, torch
t0 = time.perf_counter()
from physioemo.models import HiSTN
from physioemo.training.losses import gaussian_targets, soft_cross_entropy
torch.set_num_threads(1)
m = HiSTN().train()
x = torch.randn(8, 14, 128)
soft_cross_entropy(m(x), gaussian_targets(torch.randint(0, 5, (8,)))).backward()
print(time.perf_counter() - t0)
"""


def first_call_seconds(cache_dir):
    """Seconds to import, build and run one training step in a fresh process.

    With an empty ``NUMBA_CACHE_DIR`` this includes compiling every Numba kernel (paid
    once per installation); run again, the kernels load from that cache.
    """
    import subprocess

    env = dict(os.environ, NUMBA_CACHE_DIR=str(cache_dir))
    out = subprocess.run([sys.executable, "-c", _COMPILE_SNIPPET], env=env, check=True,
                         capture_output=True, text=True).stdout
    return float(out.strip().splitlines()[-1])


def sd_steps_per_fold():
    """Steps per epoch of each sd fold (histn-spec §5.1), counted from the start rule."""
    starts = np.arange(CLIP - WIN + 1)
    steps = []
    for f in range(FOLDS):
        held = [f, (f - 1) % FOLDS]  # test block f, validation block f-1 (9 for f=0)
        ok = np.ones(starts.size, bool)
        for b in held:
            lo, hi = b * BLOCK, (b + 1) * BLOCK
            ok &= (starts + WIN <= lo) | (starts >= hi)
        steps.append(int(ok.sum()) * N_CLIPS // 256)
    return steps


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def make_step(model, x, q, adam):
    kw = {"fused": True} if adam == "fused" else {"foreach": adam == "foreach"}
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, **kw)

    def step():
        opt.zero_grad(set_to_none=True)
        loss = soft_cross_entropy(model(x), q)
        loss.backward()
        opt.step()
        model.apply_constraints()
        return loss

    return step


def time_rounds(fns, n_steps, n_rounds, device):
    """Alternate the contenders round by round; return per-contender seconds per step."""
    out = {name: [] for name in fns}
    cpu = {name: [] for name in fns}
    for _ in range(n_rounds):
        for name, fn in fns.items():
            sync(device)
            t0, c0 = time.perf_counter(), time.process_time()
            for _ in range(n_steps):
                fn()
            sync(device)
            out[name].append((time.perf_counter() - t0) / n_steps)
            cpu[name].append((time.process_time() - c0) / n_steps)
    return out, cpu


def latency(model, x1, n, device):
    times = []
    with torch.inference_mode():
        for _ in range(max(20, n // 10)):
            model(x1)
        sync(device)
        for _ in range(n):
            t0 = time.perf_counter()
            model(x1)
            sync(device)
            times.append(time.perf_counter() - t0)
    t = np.array(times) * 1e3
    return float(np.median(t)), float(np.percentile(t, 99))


def _worker_rate(args):
    """Steps/s of one single-threaded training loop, median of rounds (in a worker process)."""
    batch, n_steps, n_rounds, seed = args
    torch.set_num_threads(1)
    torch.manual_seed(seed)
    model = HiSTN(graph="G0", dropout=0.5)
    x = torch.randn(batch, 14, 128)
    q = gaussian_targets(torch.randint(0, 5, (batch,)))
    step = make_step(model, x, q, "fused")
    for _ in range(3):
        step()
    rates = []
    for _ in range(n_rounds):
        t0 = time.perf_counter()
        for _ in range(n_steps):
            step()
        rates.append(n_steps / (time.perf_counter() - t0))
    return statistics.median(rates)


def multiprocess_wps(n_workers, batch, n_steps, n_rounds):
    """Aggregate windows/s of ``n_workers`` single-threaded training loops at once.

    This is how ``physioemo evaluate --jobs K --threads 1`` uses the cores: one subject or
    fold per process, no intra-op threading. Each worker times ``n_rounds`` rounds of
    ``n_steps`` steps; the aggregate is the sum of the workers' median rates.
    """
    import multiprocessing as mp

    with mp.get_context("spawn").Pool(n_workers) as pool:
        rates = pool.map(_worker_rate,
                         [(batch, n_steps, n_rounds, i) for i in range(n_workers)])
    return batch * sum(rates)


def protocol_epoch(device, threads, epochs=1, n_jobs=1):
    """Wall time of real ``sd`` training epochs through :func:`run_protocol`.

    One subject of a generated DREAMER-format file with DREAMER's clip lengths, the full
    recipe (batch 256, 423 class-balanced steps per epoch, validation and test passes),
    ``epochs`` epochs of fold 0 (of folds ``0..n_jobs-1`` in ``n_jobs`` processes, as
    ``evaluate --jobs`` shares a subject's folds): what a user's run spends per fold-epoch,
    data sampling, host-to-device copies, evaluation and worker start-up included.

    Returns
    -------
    seconds : float
        Wall time per epoch of one fold (with ``n_jobs`` folds at once: wall / n_jobs).
    record : dict
        Fold 0's result record.
    fit_seconds : float
        The same from the folds' time in ``Trainer.fit`` (worker start-up excluded).
    """
    import tempfile

    from physioemo.datasets import load_preprocessed, make_synthetic_dreamer
    from physioemo.evaluation.protocols import run_protocol

    with tempfile.TemporaryDirectory() as tmp:
        path = make_synthetic_dreamer(Path(tmp) / "dreamer.mat", n_subjects=1, seed=0)
        data, labels = load_preprocessed(path, cache_dir=Path(tmp) / "cache")
        t0 = time.perf_counter()
        recs = run_protocol("sd", data, labels, folds=list(range(n_jobs)), epochs=epochs,
                            n_threads=threads, n_jobs=n_jobs, device=device.type,
                            verbose=False, save_checkpoints=False)
        wall = time.perf_counter() - t0
    fit = statistics.mean(r["train_seconds"] for r in recs) / epochs / n_jobs
    return wall / epochs / n_jobs, recs[0], fit


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--threads", type=int, default=2, help="torch intra-op threads (CPU)")
    p.add_argument("--latency-threads", type=int, default=1,
                   help="torch threads for the batch-1 latency (one window gains nothing from "
                        "more)")
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--steps", type=int, default=20, help="timed steps per round")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--latency-calls", type=int, default=2000)
    p.add_argument("--no-compile", dest="compile", action="store_false",
                   help="skip the torch.compile'd inference row (compiling takes ~20 s on CPU)")
    p.add_argument("--adam", default="fused", choices=["fused", "foreach", "loop"],
                   help="Adam implementation for both models (fused is fastest on CPU)")
    p.add_argument("--protocol-epochs", dest="protocol_epochs", type=int, default=1,
                   help="epochs of a real sd fold through run_protocol to time (0: skip)")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)
    if args.quick:
        args.steps, args.rounds, args.latency_calls = 3, 2, 200
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        sys.exit("--device cuda: no CUDA device is available; run on a GPU machine.")
    torch.set_num_threads(args.threads)
    load_before = os.getloadavg()

    torch.manual_seed(0)
    ours = HiSTN(graph="G0", dropout=0.5).to(device)
    literal = HiSTN(graph="G0", dropout=0.5).to(device)
    literal.load_state_dict(ours.state_dict())
    literal.temporal.impl = "literal"
    literal.native = False
    torch_ops = HiSTN(graph="G0", dropout=0.5).to(device)  # ours without the native kernel
    torch_ops.load_state_dict(ours.state_dict())
    torch_ops.native = False
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(args.batch, 14, 128, generator=gen).to(device)
    y = torch.randint(0, 5, (args.batch,), generator=gen)
    q = gaussian_targets(y).to(device)

    # agreement: same weights, same batch, dropout off
    ours.eval(), literal.eval()
    agree = {}
    grads = {}
    for name, m in (("ours", ours), ("literal", literal)):
        m.zero_grad()
        logits = m(x)
        soft_cross_entropy(logits, q).backward()
        grads[name] = (logits.detach(), [p.grad.detach().clone() for p in m.parameters()])
        m.zero_grad()
    agree["max |logit diff|"] = float((grads["ours"][0] - grads["literal"][0]).abs().max())
    agree["max |grad diff| / max |grad|"] = max(
        float((a - b).abs().max() / b.abs().max().clamp_min(1e-30))
        for a, b in zip(grads["ours"][1], grads["literal"][1], strict=True))

    ours.train(), literal.train()
    fns = {"physioemo HiSTN": make_step(ours, x, q, args.adam),
           "literal conv2d head (same model)": make_step(literal, x, q, args.adam)}
    if device.type == "cpu":
        fns["physioemo HiSTN, PyTorch operators only (fused kernels off)"] = make_step(
            torch_ops, x, q, args.adam)
    if device.type == "cuda":  # what Trainer does on CUDA: the whole step as a CUDA graph
        from physioemo.training.trainer import _Step

        graphed = HiSTN(graph="G0", dropout=0.5).to(device)
        graphed.load_state_dict(ours.state_dict())
        g_opt = torch.optim.Adam(graphed.parameters(), lr=torch.tensor(1e-3, device=device),
                                 fused=True, capturable=True)
        g_step = _Step(graphed, g_opt, graphed.apply_constraints, graph=True)
        fns["physioemo HiSTN, whole step as a CUDA graph (Trainer on cuda)"] = (
            lambda: g_step(x, q))
    for fn in fns.values():  # warm-up
        for _ in range(3):
            fn()
    rounds, cpu_rounds = time_rounds(fns, args.steps, args.rounds, device)
    sps = {k: statistics.median(v) for k, v in rounds.items()}
    cpu_sps = {k: statistics.median(v) for k, v in cpu_rounds.items()}
    wps = {k: args.batch / v for k, v in sps.items()}
    ours_name, lit_name = list(fns)[:2]
    mp_wps = None
    if device.type == "cpu" and (os.cpu_count() or 1) > 1:
        mp_wps = multiprocess_wps(os.cpu_count(), args.batch, 2 * args.steps, 2 * args.rounds)

    # validation forward (2000 windows, eval, no grad) per epoch
    xv = torch.randn(2000, 14, 128, generator=gen).to(device)
    ours.eval()
    with torch.inference_mode():
        ours(xv)
        sync(device)
        t0 = time.perf_counter()
        for _ in range(3):
            ours(xv)
        sync(device)
    val_s = (time.perf_counter() - t0) / 3

    x1 = x[:1].contiguous()
    torch.set_num_threads(args.latency_threads)
    lat = {ours_name: latency(ours.eval(), x1, args.latency_calls, device)}
    lat[lit_name] = latency(literal.eval(), x1, args.latency_calls, device)
    if args.compile:
        try:
            t0 = time.perf_counter()
            compiled = torch.compile(ours.eval())
            with torch.inference_mode():
                compiled(x1)
            compile_s = time.perf_counter() - t0
            lat[f"physioemo HiSTN, torch.compile (compiled in {compile_s:.0f} s)"] = latency(
                compiled, x1, args.latency_calls, device)
        except Exception as err:  # noqa: BLE001 - report, don't fail the benchmark
            lat["physioemo HiSTN, torch.compile (failed)"] = (float("nan"), float("nan"))
            print(f"torch.compile failed: {type(err).__name__}: {err}", file=sys.stderr)

    compile_s = None
    if device.type == "cpu":
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            compile_s = (first_call_seconds(tmp), first_call_seconds(tmp))
    proto = proto_jobs = None
    n_cores = os.cpu_count() or 1
    if args.protocol_epochs > 0:
        proto = protocol_epoch(device, args.threads, args.protocol_epochs)
        if device.type == "cpu" and n_cores > 1:
            proto_jobs = protocol_epoch(device, 1, args.protocol_epochs, n_jobs=n_cores)

    steps = sd_steps_per_fold()
    total_steps = sum(steps) * EPOCHS
    windows = total_steps * args.batch
    sd_ours = total_steps * sps[ours_name] + FOLDS * EPOCHS * val_s
    sd_lit = total_steps * sps[lit_name]
    sd_keras = windows / REFERENCE_KERAS_WPS
    load_after = os.getloadavg()

    dev_desc = (torch.cuda.get_device_name(0) if device.type == "cuda"
                else f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores")
    lines = [
        "# HiSTN training and inference benchmark", "",
        f"Command: `.venv/bin/python benchmarks/train.py {' '.join(argv or sys.argv[1:])}`".
        replace("  ", " "),
        f"Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; device: {args.device} "
        f"({dev_desc}); torch {torch.__version__}; threads {args.threads} (training); "
        f"batch {args.batch}; {args.rounds} rounds x {args.steps} steps, median round; "
        f"Adam: {args.adam} (both models).",
        f"Load average before/after: {load_before[0]:.1f} / {load_after[0]:.1f} "
        f"({os.cpu_count()} cores; a load above the core count means the machine was shared "
        "and the absolute numbers are pessimistic; the ratios are measured side by side).",
        "",
        "## Training step (forward + backward + Adam + apply_constraints)", "",
        "| model | ms / step | windows / s | vs literal | vs Keras reference (4,200/s) "
        "| process CPU ms / step |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for k in fns:
        lines.append(f"| {k} | {1e3 * sps[k]:.2f} | {wps[k]:,.0f} | "
                     f"{wps[k] / wps[lit_name]:.2f}x | {wps[k] / REFERENCE_KERAS_WPS:.2f}x | "
                     f"{1e3 * cpu_sps[k]:.2f} |")
    if mp_wps is not None:
        lines.append(f"| physioemo HiSTN, {os.cpu_count()} worker processes x 1 thread "
                     f"(`evaluate --jobs {os.cpu_count()} --threads 1`), aggregate | "
                     f"{1e3 * args.batch / mp_wps:.2f} | {mp_wps:,.0f} | "
                     f"{mp_wps / wps[lit_name]:.2f}x | {mp_wps / REFERENCE_KERAS_WPS:.2f}x | |")
    lines.append("| TF/Keras reference (quoted from peers.md, not run here) | "
                 f"{1e3 * 256 / REFERENCE_KERAS_WPS:.1f} | 4,200 | | 1.00x | |")
    ops_name = "physioemo HiSTN, PyTorch operators only (fused kernels off)"
    if ops_name in sps:
        lines += ["", f"Fused Numba kernels vs PyTorch operators (same process, alternating "
                  f"rounds): **{wps[ours_name] / wps[ops_name]:.2f}x**."]
    if compile_s is not None:
        lines += ["", f"First call in a fresh process (import, model, one training step), "
                  f"1 thread: **{compile_s[0]:.1f} s** with an empty `NUMBA_CACHE_DIR` "
                  f"(Numba compiles the kernels; once per installation), "
                  f"**{compile_s[1]:.1f} s** with the kernels loaded from that cache."]
    lines += [
        "", "Per-round windows/s: " + "; ".join(
            f"{k}: " + ", ".join(f"{args.batch / s:,.0f}" for s in v)
            for k, v in rounds.items()),
        "", "Agreement (same weights and batch, eval mode): " + ", ".join(
            f"{k} = {v:.2e}" for k, v in agree.items()),
        "", f"## Batch-1 inference (eval, torch.inference_mode, {args.latency_threads} "
        f"thread(s), {args.latency_calls} calls)", "",
        "| model | median ms | p99 ms |", "|---|---:|---:|",
    ]
    for k, (med, p99) in lat.items():
        lines.append(f"| {k} | {med:.3f} | {p99:.3f} |")
    for k, v in REFERENCE_LATENCY_MS.items():
        lines.append(f"| {k} (quoted from peers.md) | {v:.1f} | |")
    lines += [
        "", "## Projected wall time of one subject's `sd` protocol (training)", "",
        f"Steps per epoch by fold: {steps} (sum x {EPOCHS} epochs = {total_steps:,} steps, "
        f"{windows:,} windows). physioemo adds {FOLDS * EPOCHS} validation passes of 2000 "
        f"windows ({val_s:.3f} s each, measured).", "",
        "| model | projected wall time |", "|---|---:|",
        f"| {ours_name} | {sd_ours / 60:.1f} min |",
        f"| {lit_name} | {sd_lit / 60:.1f} min |",
    ] + [
        f"| {k} | {(total_steps * sps[k] + FOLDS * EPOCHS * val_s) / 60:.1f} min |"
        for k in list(fns)[2:]
    ] + [
        f"| TF/Keras reference at 4,200 windows/s | {sd_keras / 60:.1f} min "
        f"({sd_keras / 3600:.2f} h) |", "",
    ]
    if proto is not None:
        epoch_s, rec, _ = proto
        lines += [
            "## Measured: real `sd` epochs through `run_protocol` (fold 0)", "",
            f"{args.protocol_epochs} epoch(s) of fold 0 of one generated subject with "
            "DREAMER's clip lengths, full recipe (batch 256, class-balanced sampling, "
            "validation each epoch, test at the end), on the real Trainer: "
            f"**{epoch_s:.1f} s per epoch** wall "
            f"({rec['train_seconds'] / args.protocol_epochs:.1f} s of it in `Trainer.fit`; "
            f"{rec['n_train']:,} training windows), so one subject's full `sd` run "
            "(10 folds x 50 epochs) takes about "
            f"**{10 * 50 * epoch_s / 60:.0f} min** here; the Keras reference needs ~24.3 s "
            f"per epoch on this CPU kind (peers.md).", ""]
    if proto_jobs is not None:
        wall_s, _, fit_s = proto_jobs
        lines += [
            f"The same with `--jobs {n_cores} --threads 1` (folds 0..{n_cores - 1} of the "
            f"subject at once in {n_cores} processes, as `evaluate` shares a subject's folds): "
            f"**{fit_s:.1f} s per fold-epoch** in `Trainer.fit` ({wall_s:.1f} s counting the "
            f"workers' start-up, which a real run pays once), so one subject's full `sd` run "
            f"takes about **{10 * 50 * fit_s / 60:.0f} min** "
            f"({24.3 / fit_s:.1f}x the Keras reference's 24.3 s per epoch).", ""]
    text = "\n".join(lines)
    out = Path(args.out or Path(__file__).parent / "results" / (
        "train.md" if args.device == "cpu" else f"train-{args.device}.md"))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    print(text)
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
