"""Benchmark the acquisition path: per-chunk latency, CPU share, and a lossless soak run.

1. Per-chunk latency of the online pipeline (16 channels, 250 Hz, 10-sample chunks):
   physioemo's full ``Acquisition`` step (journal write + telemetry + stateful notch and
   band-pass + band power every 0.25 s) side by side with its DSP part alone, scipy with
   carried state (``sosfilt(zi=...)`` + periodogram band power), and BrainFlow's
   ``DataFilter`` per-chunk calls (stateless, so not equivalent -- shown for speed).
2. CPU share of a live ``physioemo acquire`` on BrainFlow's synthetic board (the whole
   process: BrainFlow's thread, reader thread, main loop, journal fsyncs).
3. Soak: 30 minutes of recorded data replayed through BrainFlow's playback board at an
   accelerated rate, recorded again; lost samples = samples missing or changed between
   the two EDF+ files (target 0).

Writes benchmarks/results/acquire.md. Usage::

    .venv/bin/python benchmarks/acquire.py                 # full (about 3 minutes)
    .venv/bin/python benchmarks/acquire.py --soak-min 2    # shorter soak
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

SFREQ, N_CH, CHUNK = 250.0, 16, 10
warnings.filterwarnings("ignore", message="pkg_resources is deprecated")


def _data(n):
    rng = np.random.default_rng(0)
    t = np.arange(n) / SFREQ
    x = rng.normal(0, 10, (N_CH, n)) + 20 * np.sin(2 * np.pi * 10 * t)
    return x + 5 * np.sin(2 * np.pi * 50 * t)


def _lat(times):
    a = np.array(times) * 1e6
    return float(np.median(a)), float(np.percentile(a, 99))


def bench_latency(seconds=120):
    from scipy.signal import sosfilt, sosfilt_zi

    from physioemo.acquisition.base import Source
    from physioemo.acquisition.recorder import Recorder
    from physioemo.acquisition.session import Acquisition
    from physioemo.dsp import FREQ_BANDS, OnlineBandPower, StreamingFilter, design_sos

    n = int(seconds * SFREQ)
    x = _data(n)
    ts = 1.7e9 + np.arange(n) / SFREQ
    pkg = np.arange(n) % 256
    starts = range(0, n - CHUNK + 1, CHUNK)
    # chunks arrive C-contiguous from the ring buffer; give every peer the same arrays
    chunks = [np.ascontiguousarray(x[:, i:i + CHUNK]) for i in starts]
    upd = int(0.25 * SFREQ)
    rows = {}

    class _Null(Source):
        ch_names = [f"C{i}" for i in range(N_CH)]
        sfreq = SFREQ
        physical_min, physical_max, line_freq = -2000.0, 2000.0, 50.0

        def _start(self):
            pass

        def _read(self, m):
            return np.empty((N_CH, 0)), np.empty(0), None

        def _stop(self):
            pass

    # physioemo full step
    with tempfile.TemporaryDirectory() as tmp:
        rec = Recorder(Path(tmp) / "b.edf", _Null.ch_names, SFREQ, physical_min=-2000.0,
                       physical_max=2000.0)
        acq = Acquisition(_Null(), rec, notch=50.0)
        acq._setup()
        block = np.empty((N_CH + 2, n))
        block[:N_CH], block[N_CH], block[N_CH + 1] = x, ts, pkg
        times = []
        cpu0 = time.process_time()
        blocks = [np.ascontiguousarray(block[:, i:i + CHUNK]) for i in starts]
        for b in blocks:
            t0 = time.perf_counter()
            acq._process(b)
            times.append(time.perf_counter() - t0)
        cpu = time.process_time() - cpu0
        rec.abort()
    rows["physioemo Acquisition step (journal+telemetry+filter+band power)"] = (
        *_lat(times[50:]), cpu / seconds)

    # physioemo DSP only
    filt = StreamingFilter(SFREQ, N_CH, l_freq=1.0, h_freq=45.0, notch=50.0)
    obp = OnlineBandPower(SFREQ, N_CH, int(SFREQ))
    filt.process(x[:, :CHUNK])
    times, pend = [], []
    cpu0 = time.process_time()
    for k in range(len(chunks)):
        t0 = time.perf_counter()
        y = filt.process(chunks[k])
        pend.append(y)
        if (k + 1) * CHUNK % upd < CHUNK:
            obp.update(np.concatenate(pend, axis=1))
            pend = []
        times.append(time.perf_counter() - t0)
    rows["physioemo StreamingFilter + OnlineBandPower"] = (
        *_lat(times[50:]), (time.process_time() - cpu0) / seconds)

    # scipy with carried state + periodogram band power
    sos = design_sos(SFREQ, 1.0, 45.0, order=4, notch=50.0)
    zi = sosfilt_zi(sos)[:, None, :] * x[None, :, :1]
    win = np.zeros((N_CH, int(SFREQ)))
    freqs = np.fft.rfftfreq(int(SFREQ), 1 / SFREQ)
    masks = [(freqs >= lo) & (freqs < hi) for lo, hi in FREQ_BANDS.values()]
    hann = np.hanning(int(SFREQ))
    times, pend = [], 0
    cpu0 = time.process_time()
    for k in range(len(chunks)):
        t0 = time.perf_counter()
        y, zi = sosfilt(sos, chunks[k], axis=-1, zi=zi)
        win = np.roll(win, -CHUNK, axis=1)
        win[:, -CHUNK:] = y
        if (k + 1) * CHUNK % upd < CHUNK:
            p = np.abs(np.fft.rfft((win - win.mean(1, keepdims=True)) * hann)) ** 2
            _ = np.stack([p[:, m].sum(1) for m in masks], axis=1)
        times.append(time.perf_counter() - t0)
    rows["scipy sosfilt(zi) + rfft band power"] = (
        *_lat(times[50:]), (time.process_time() - cpu0) / seconds)

    # BrainFlow DataFilter per chunk (stateless: restarts the filter every chunk)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from brainflow.data_filter import DataFilter, FilterTypes, WindowOperations
        times = []
        win = np.zeros((N_CH, 256))
        cpu0 = time.process_time()
        for k in range(len(chunks)):
            t0 = time.perf_counter()
            c = chunks[k].copy()  # BrainFlow filters in place
            for ch in range(N_CH):
                DataFilter.perform_bandpass(c[ch], int(SFREQ), 1.0, 45.0, 4,
                                            FilterTypes.BUTTERWORTH.value, 0)
            win = np.roll(win, -CHUNK, axis=1)
            win[:, -CHUNK:] = c
            if (k + 1) * CHUNK % upd < CHUNK:
                for ch in range(N_CH):
                    psd = DataFilter.get_psd(np.ascontiguousarray(win[ch]), int(SFREQ),
                                             WindowOperations.HANNING.value)
                    for lo, hi in FREQ_BANDS.values():
                        DataFilter.get_band_power(psd, lo, hi)
            times.append(time.perf_counter() - t0)
        rows["BrainFlow DataFilter per chunk (stateless, not equivalent)"] = (
            *_lat(times[50:]), (time.process_time() - cpu0) / seconds)
    except Exception as err:  # noqa: BLE001
        rows[f"BrainFlow DataFilter: failed ({err})"] = (float("nan"),) * 3
    return rows


def bench_live(seconds, tmp):
    """CPU share of the whole process while acquiring from the synthetic board."""
    from physioemo.acquisition.brainflow_source import BrainFlowSource
    from physioemo.acquisition.recorder import Recorder
    from physioemo.acquisition.session import Acquisition

    source = BrainFlowSource("synthetic")
    rec = Recorder(Path(tmp) / "live.edf", source.ch_names, SFREQ,
                   physical_min=source.physical_min, physical_max=source.physical_max)
    acq = Acquisition(source, rec, notch=50.0)
    t0, cpu0 = time.perf_counter(), time.process_time()  # all threads of this process
    summary = acq.run(seconds)
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    lat = np.array(acq.latencies_s) * 1e3
    return {"wall_s": wall, "cpu_s": cpu, "seconds": seconds,
            "dropped": summary["telemetry"]["dropped_samples"],
            "chunk_ms_median": float(np.median(lat)), "chunk_ms_p99": float(np.percentile(lat, 99)),
            "n_chunks": lat.size}


def bench_soak(minutes, speed, tmp):
    import mne

    from physioemo.acquisition.brainflow_source import BrainFlowSource
    from physioemo.acquisition.profiles import load_profile
    from physioemo.acquisition.recorder import Recorder, write_edf
    from physioemo.acquisition.session import Acquisition

    prof = load_profile("synthetic")
    n = int(minutes * 60 * SFREQ)
    src_path = Path(tmp) / "soak-src.edf"
    x = _data(n)
    write_edf(src_path, x, SFREQ, prof.ch_names, physical_min=prof.physical_min,
              physical_max=prof.physical_max, equipment="physioemo:synthetic")
    out = Path(tmp) / "soak-out.edf"
    t0 = time.perf_counter()
    source = BrainFlowSource("playback", file=src_path, speed=speed)
    rec = Recorder(out, source.ch_names, SFREQ, physical_min=prof.physical_min,
                   physical_max=prof.physical_max)
    acq = Acquisition(source, rec, notch=50.0)
    cpu0 = time.process_time()
    summary = acq.run()
    cpu = time.process_time() - cpu0
    wall = time.perf_counter() - t0
    a = mne.io.read_raw_edf(src_path, preload=True, verbose="error").get_data()
    b = mne.io.read_raw_edf(out, preload=True, verbose="error").get_data()
    m = min(a.shape[1], b.shape[1])
    changed = int(np.count_nonzero(np.any(a[:, :m] != b[:, :m], axis=0)))
    lat = np.array(acq.latencies_s) * 1e3
    return {"minutes": minutes, "speed": speed, "n_expected": n, "n_recorded": int(b.shape[1]),
            "missing": n - m, "changed": changed,
            "telemetry_dropped": summary["telemetry"]["dropped_samples"],
            "overflow": summary["telemetry"]["overflow_samples"], "wall_s": wall,
            "cpu_s": cpu, "chunk_ms_median": float(np.median(lat)),
            "chunk_ms_p99": float(np.percentile(lat, 99)), "n_chunks": lat.size,
            "achieved": summary["telemetry"]["achieved_sfreq"]}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--latency-s", type=float, default=120.0)
    ap.add_argument("--live-s", type=float, default=20.0)
    ap.add_argument("--soak-min", type=float, default=30.0)
    ap.add_argument("--speed", type=float, default=30.0)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "acquire.md"))
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        lat = bench_latency(args.latency_s)
        live = bench_live(args.live_s, tmp)
        soak = bench_soak(args.soak_min, args.speed, tmp)
    lines = [
        "# Acquisition benchmark",
        "",
        f"`{' '.join(['python', *sys.argv])}` on {platform.node()} "
        f"({os.cpu_count()} cores, Python {platform.python_version()}); "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}. Shared machine: other "
        "jobs were running, so timings are upper bounds.",
        "",
        f"## 1. Per-chunk latency, {N_CH} channels at {SFREQ:g} Hz, {CHUNK}-sample chunks "
        f"({args.latency_s:g} s of data)",
        "",
        "Band-pass 1-45 Hz order 4 + 50 Hz notch, causal, state carried; band power of the "
        "last 1 s every 0.25 s. CPU share = CPU time / duration of the data.",
        "",
        "| pipeline | median (us) | p99 (us) | CPU share |",
        "|---|---:|---:|---:|",
    ]
    base = lat["physioemo StreamingFilter + OnlineBandPower"][0]
    for name, (med, p99, share) in lat.items():
        lines.append(f"| {name} | {med:.1f} | {p99:.1f} | {100 * share:.3f} % |")
    scipy_med = lat["scipy sosfilt(zi) + rfft band power"][0]
    lines += ["", f"Median ratio scipy / physioemo DSP: {scipy_med / base:.2f}.", ""]
    share = live["cpu_s"] / live["wall_s"]
    lines += [
        f"## 2. Live acquisition CPU share (synthetic board, {live['seconds']:g} s)",
        "",
        f"`Acquisition(BrainFlowSource('synthetic'), Recorder(...)).run({live['seconds']:g})`"
        f" in this process: {live['cpu_s']:.2f} s CPU (all threads: BrainFlow, reader, main "
        f"loop, journal fsyncs, final EDF+) over {live['wall_s']:.1f} s wall = "
        f"**{100 * share:.1f} %** of one core; {live['n_chunks']} chunks, median "
        f"{live['chunk_ms_median']:.2f} ms, p99 {live['chunk_ms_p99']:.2f} ms per chunk; "
        f"{live['dropped']} samples dropped.",
        "",
        f"## 3. Soak: {soak['minutes']:g} min of data through the playback board at "
        f"{soak['speed']:g}x",
        "",
        "| expected samples | recorded | missing | changed | dropped (telemetry) | "
        "ring overflow | wall (s) | CPU (s) | chunk median / p99 (ms) |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        f"| {soak['n_expected']} | {soak['n_recorded']} | {soak['missing']} | "
        f"{soak['changed']} | {soak['telemetry_dropped']} | {soak['overflow']} | "
        f"{soak['wall_s']:.1f} | {soak['cpu_s']:.1f} | {soak['chunk_ms_median']:.2f} / "
        f"{soak['chunk_ms_p99']:.2f} |",
        "",
        f"**Lost samples: {soak['missing'] + soak['changed']}** (target 0). "
        f"Achieved rate {soak['achieved']} Hz of data ({soak['n_chunks']} chunks): the "
        f"playback board paced the file at {soak['achieved'] / SFREQ * soak['speed']:.1f}x "
        "real time. Wall time includes converting the EDF+ to BrainFlow's CSV for the "
        "playback board. In section 1, the p99 of the full step is the once-per-second "
        "fsync of the journal.",
        "",
    ]
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
