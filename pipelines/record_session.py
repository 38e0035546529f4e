"""Record a session from a headset with markers sent by a scripted experiment.

What it does
------------
1. Starts ``physioemo acquire`` (a subprocess, as a lab would run it) on a device profile
   with a loopback TCP marker listener (``--markers tcp:PORT``).
2. Runs a scripted experiment: a resting baseline, then ``--repeats`` blocks of every
   condition in ``--conditions`` (seeded random order), each a stimulus of ``--stim-s``
   seconds followed by ``--rest-s`` seconds of rest. Every transition is sent as a one-line
   text marker to 127.0.0.1:PORT, exactly what a PsychoPy/Presentation script would send
   (``baseline``, ``stim/<condition>``, ``rest``, ``end``). The schedule goes to
   ``OUT_schedule.tsv``.
3. Stops the recording cleanly (SIGINT, like Ctrl-C: the current second is finished).
4. Summarises the EDF+ with the same feature code as the live view: each marked segment is
   band-pass filtered (:func:`physioemo.dsp.filter_data`), cut into 1-s windows
   (:func:`physioemo.dsp.sliding_windows`) and turned into band power per window and channel
   (:func:`physioemo.dsp.band_power`, bands :data:`physioemo.dsp.FREQ_BANDS`); the mean over
   windows and channels of log10 power (uV^2) is written per segment to ``OUT_summary.csv``
   and per condition to the terminal.

Outputs: ``OUT.edf`` (EDF+, markers as annotations), ``OUT.json`` (sidecar written by
``acquire``), ``OUT_schedule.tsv``, ``OUT_summary.csv``.

Expected run time: the experiment itself (``lead + baseline + repeats * n_conditions *
(stim + rest) + tail``; 4 min 20 s with the defaults) plus a few seconds to start the board.
``--tiny``: synthetic board, two 1.5-s trials, about 15 s.

Examples
--------
    python pipelines/record_session.py --device synthetic --out sessions/s01.edf
    python pipelines/record_session.py --device cyton --serial-port /dev/ttyUSB0 \\
        --out s01.bdf --conditions calm fear joy --repeats 4 --stim-s 30 --rest-s 15
    python pipelines/record_session.py --tiny --out /tmp/tiny.edf
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

#: Marker texts of the scripted experiment (a condition marker is STIM_PREFIX + name).
BASELINE, STIM_PREFIX, REST, END = "baseline", "stim/", "rest", "end"


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="synthetic", help="device profile (physioemo devices)")
    p.add_argument("--serial-port", help="serial port of the dongle (passed to acquire)")
    p.add_argument("--out", default="session.edf", help="output .edf/.bdf (default: %(default)s)")
    p.add_argument("--conditions", nargs="+", default=["neutral", "positive", "negative"],
                   help="stimulus conditions (default: %(default)s)")
    p.add_argument("--repeats", type=int, default=3, help="blocks per condition (default 3)")
    p.add_argument("--baseline-s", type=float, default=30.0, help="resting baseline (30 s)")
    p.add_argument("--stim-s", type=float, default=10.0, help="stimulus length (10 s)")
    p.add_argument("--rest-s", type=float, default=5.0, help="rest after a stimulus (5 s)")
    p.add_argument("--lead-s", type=float, default=2.0,
                   help="wait after the marker connection before the baseline (2 s)")
    p.add_argument("--tail-s", type=float, default=1.0, help="record after 'end' (1 s)")
    p.add_argument("--port", type=int, default=0, help="TCP marker port (default: a free one)")
    p.add_argument("--seed", type=int, default=0, help="seed of the condition order")
    p.add_argument("--force", action="store_true", help="replace an existing recording")
    p.add_argument("--tiny", action="store_true",
                   help="CI mode: synthetic board, 2 conditions x 1 repeat of 1.5-s stimuli")
    args = p.parse_args(argv)
    if args.tiny:
        args.device, args.conditions, args.repeats = "synthetic", ["a", "b"], 1
        args.baseline_s, args.stim_s, args.rest_s, args.lead_s = 2.0, 1.5, 1.5, 1.5
    return args


def physioemo_exe():
    """The ``physioemo`` entry point next to this Python (else the one on PATH)."""
    exe = Path(sys.executable).with_name("physioemo")
    return str(exe) if exe.exists() else (shutil.which("physioemo") or "physioemo")


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def schedule(args):
    """The experiment as ``(offset_s, marker)`` pairs, offsets from the baseline marker."""
    rng = np.random.default_rng(args.seed)
    order = [c for _ in range(args.repeats) for c in rng.permutation(args.conditions)]
    events, t = [(0.0, BASELINE)], args.baseline_s
    for cond in order:
        events += [(t, STIM_PREFIX + str(cond)), (t + args.stim_s, REST)]
        t += args.stim_s + args.rest_s
    events.append((t, END))
    return events


def connect(port, proc, timeout_s=30.0):
    """Connect to the acquire marker listener, retrying until it listens."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"physioemo acquire exited early (code {proc.returncode}); see above.")
        try:
            return socket.create_connection(("127.0.0.1", port), timeout=1.0)
        except OSError:
            time.sleep(0.1)
    sys.exit(f"no marker listener on 127.0.0.1:{port} after {timeout_s:.0f} s")


def run_experiment(events, sock, lead_s):
    """Send each marker at its time; return the host times they were sent."""
    time.sleep(lead_s)
    t0 = time.monotonic()
    sent = []
    for offset, text in events:
        time.sleep(max(0.0, t0 + offset - time.monotonic()))
        sock.sendall((text + "\n").encode())
        sent.append(time.monotonic() - t0)
        print(f"  {sent[-1]:7.2f} s  marker {text!r}", flush=True)
    return sent


def summarise(edf, out_csv):
    """Band power per marked segment with physioemo.dsp; returns the summary rows."""
    import mne

    from physioemo.dsp import FREQ_BANDS, band_power, filter_data, sliding_windows

    raw = mne.io.read_raw_edf(edf, preload=True, verbose="error")
    sfreq = raw.info["sfreq"]
    data = raw.get_data(units="uV")
    ours = [a for a in raw.annotations if a["description"] in (BASELINE, REST, END)
            or a["description"].startswith(STIM_PREFIX)]
    win = int(round(sfreq))
    rows = []
    for a, b in zip(ours[:-1], ours[1:], strict=True):
        i0, i1 = int(round(a["onset"] * sfreq)), int(round(b["onset"] * sfreq))
        if i1 - i0 < win:
            continue
        seg = filter_data(data[:, i0:i1], sfreq, 1.0, 45.0)
        power = band_power(sliding_windows(seg, win, win), sfreq)  # (n_ch, n_win, n_bands)
        row = {"onset_s": round(a["onset"], 4), "duration_s": round((i1 - i0) / sfreq, 4),
               "label": a["description"], "n_windows": power.shape[1]}
        for k, band in enumerate(FREQ_BANDS):
            row[f"log10_{band}_uv2"] = float(np.mean(np.log10(power[..., k])))
        rows.append(row)
    with open(out_csv, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]) if rows else ["label"])
        writer.writeheader()
        writer.writerows(rows)
    return rows


def main(argv=None):
    args = parse_args(argv)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    stem = out.with_suffix("")
    events = schedule(args)
    total = args.lead_s + events[-1][0] + args.tail_s
    port = args.port or free_port()
    cmd = [physioemo_exe(), "acquire", "--device", args.device, "--out", str(out),
           "--markers", f"tcp:{port}", "--no-tui", "--duration", f"{total + 60:g}"]
    if args.serial_port:
        cmd += ["--serial-port", args.serial_port]
    if args.force:
        cmd.append("--force")
    print(f"experiment: {len(events)} markers over {events[-1][0]:.0f} s "
          f"(about {total:.0f} s of recording)\n$ {' '.join(cmd)}", flush=True)
    proc = subprocess.Popen(cmd)
    try:
        with connect(port, proc) as sock:
            sent = run_experiment(events, sock, args.lead_s)
        time.sleep(args.tail_s)
        proc.send_signal(signal.SIGINT)  # a clean stop, as Ctrl-C
        code = proc.wait(timeout=30)
    except BaseException:
        if proc.poll() is None:
            proc.kill()
        raise
    if code != 0:
        sys.exit(f"physioemo acquire failed with exit code {code}")
    with open(f"{stem}_schedule.tsv", "w") as f:
        f.write("offset_s\tsent_s\tmarker\n")
        for (offset, text), t in zip(events, sent, strict=True):
            f.write(f"{offset:.3f}\t{t:.3f}\t{text}\n")
    rows = summarise(out, f"{stem}_summary.csv")
    print(f"\nrecording: {out} ({os.path.getsize(out) / 1e6:.2f} MB)\n"
          f"summary: {stem}_summary.csv\n\nmean log10 band power (uV^2) per condition:")
    labels = sorted({r["label"] for r in rows})
    cols = [k for k in rows[0] if k.startswith("log10_")] if rows else []
    print(f"{'label':16s}" + "".join(f"{c[6:-4]:>9s}" for c in cols))
    for lab in labels:
        sel = [r for r in rows if r["label"] == lab]
        print(f"{lab:16s}" + "".join(f"{np.mean([r[c] for r in sel]):9.3f}" for c in cols))
    return 0


if __name__ == "__main__":
    sys.exit(main())
