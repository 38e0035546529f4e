"""``physioemo demo``: the main job end to end on built-in defaults."""

from __future__ import annotations

HELP = "run the main job end to end on built-in defaults (no headset, no DREAMER licence)"
DESCRIPTION = """Run the main job of physioemo end to end on built-in defaults, with no headset
and no DREAMER licence, in a few minutes on a laptop. Every step runs the real code:

  1. record --seconds (30) from BrainFlow's synthetic board (profile synthetic-epoc: the
     board's rows named as DREAMER's Emotiv channels) into EDF+ with `physioemo acquire`,
     while a scripted experiment sends text markers (baseline, stimulus 1, rest,
     stimulus 2, end) over TCP on 127.0.0.1; the markers become EDF+ annotations;
  2. generate a small DREAMER-format file (--subjects subjects, 18 clips of 62 s each);
  3. evaluate HiSTN subject-dependently (protocol sd) with Gaussian-smoothed and one-hot
     targets, with a QUICK recipe (--epochs 20 x --steps-per-epoch 20 batches of 64,
     lr 3e-3, fold 2 of 10 only), NOT the paper's (50 epochs of every batch, 10 folds);
  4. apply the Gaussian model of subject 1 to the recording of step 1 (`physioemo
     predict`, the "baseline" marker segment as the normalisation baseline);
  5. write a self-contained HTML report (recording, markers, band power, results,
     prediction timeline);
  6. print where everything is and the key numbers.

--out holds: report.html (start here), demo.json (paths, numbers, timings; written last:
its presence means the demo finished), config.yaml + run.json (resolved settings, seed,
versions; `physioemo demo --config OUT/config.yaml --out OTHER` reruns it), recording/
(EDF+, sidecar JSON, schedule of sent markers, band-power plot), dreamer/ (generated file
and preprocessing cache), evaluate/ (laid out as `physioemo evaluate --smoothing both`
lays out its --out: gaussian/ and onehot/ with results.jsonl, settings.json and
checkpoints/, then results.csv/.md and report.html) and prediction/predictions.csv.

An existing non-empty --out is refused unless it is the output of an earlier demo (it
holds the .physioemo-demo marker written when a demo starts); such a folder is emptied and
rewritten. Everything here is synthetic: the numbers test the software, they say nothing
about emotions in real EEG.

examples:
  physioemo demo --out demo-out
  physioemo demo --out demo-out --seconds 60 --seed 1
  physioemo demo --out /tmp/tiny --tiny          # seconds-scale smoke run (tests, CI)
"""

#: Every setting with its default (config keys are exactly these names).
DEFAULTS = {"out": "demo-out", "seconds": 30.0, "subjects": 2, "epochs": 20,
            "steps_per_epoch": 20, "threads": 1, "tiny": False, "seed": 0}

#: What --tiny changes (a smoke run of every step in well under a minute).
TINY = {"seconds": 4.0, "epochs": 2, "steps_per_epoch": 3}

#: Quick training recipe (overrides of the sd recipe; not the paper's), the one of the
#: Seq2HR check in tests/evaluation/test_protocols.py (Gaussian targets raise Seq2HR on the
#: generated data). Under `sd` the shortcut probe scores about as well (the generated
#: clips' drift names the clip): the demo prints the verdict beside the baselines.
QUICK_RECIPE = {"batch_size": 64, "lr": {0: 3e-3}, "n_val": 300, "n_test": 300}

#: The sd fold trained and tested (of 10 temporal blocks).
QUICK_FOLDS = (2,)

#: Length of each generated stimulus clip in s (load_preprocessed keeps the last 60 s).
CLIP_SECONDS = 62.0

#: The scripted experiment: (fraction of the recording, marker text) sent over TCP.
SCHEDULE = ((0.05, "baseline"), (0.3, "stimulus 1"), (0.5, "rest"), (0.6, "stimulus 2"),
            (0.8, "end"))

#: File whose presence marks a folder as written by ``physioemo demo``.
MARKER_FILE = ".physioemo-demo"

STEPS = ("Record the synthetic board with markers (EDF+)",
         "Generate a small DREAMER-format file",
         "Evaluate HiSTN, subject-dependent, Gaussian vs one-hot (quick recipe)",
         "Apply the trained model to the recording",
         "Write the demo report",
         "Summary")


def add_arguments(parser):
    """Add the command's options."""
    parser.add_argument("--out", metavar="DIR", help="output directory (default: demo-out)")
    parser.add_argument("--seconds", type=float, metavar="S",
                        help="length of the recording in seconds (default: 30)")
    parser.add_argument("--subjects", type=int, metavar="N",
                        help="subjects in the generated DREAMER file, all evaluated "
                             "(default: 2)")
    parser.add_argument("--epochs", type=int, metavar="N",
                        help="training epochs of the quick recipe (default: 20)")
    parser.add_argument("--steps-per-epoch", dest="steps_per_epoch", type=int, metavar="N",
                        help="batches of 64 per epoch (default: 20)")
    parser.add_argument("--threads", type=int, metavar="T",
                        help="torch threads (default: 1, the fastest for these small "
                             "batches on a busy laptop)")
    parser.add_argument("--tiny", action="store_true", default=None,
                        help="smoke run: 4-s recording, 2 epochs x 3 batches (explicit "
                             "flags still win)")


def resolve_settings(args):
    """Merge defaults, ``--tiny``, ``--config``, environment and flags into one dict."""
    from ..utils.config import load_config, resolve

    config = load_config(args.config, allowed=DEFAULTS) if args.config else None
    cli = {k: getattr(args, k, None) for k in DEFAULTS}
    settings = resolve(DEFAULTS, config, cli)
    if settings["tiny"]:
        # tiny replaces the defaults only: a value given in the config or on the command
        # line still wins
        given = {**(config or {}), **{k: v for k, v in cli.items() if v is not None}}
        settings.update({k: v for k, v in TINY.items() if k not in given})
    return settings


def _check(s):
    from ..utils._checks import check_number

    check_number("seconds", s["seconds"], low=2.0,
                 hint="record at least 2 s (one 1-s window after the baseline)")
    check_number("subjects", s["subjects"], low=2, high=23, integer=True,
                 hint="the sd protocol needs 2..23 subjects in the file")
    for key in ("epochs", "steps_per_epoch", "threads"):
        check_number(key, s[key], low=1, integer=True)
    check_number("seed", s["seed"], low=0, integer=True)


def prepare_out(out):
    """Create ``out``, or empty it if an earlier demo wrote it; refuse anything else.

    Parameters
    ----------
    out : Path
        The output folder.

    Returns
    -------
    replaced : bool
        Whether an earlier demo's output was removed.
    """
    import shutil

    from ..exceptions import UsageError
    from ..utils._checks import check_output_path

    check_output_path(out, kind="dir")  # a file, an unwritable place: refused before work
    replaced = False
    if out.is_dir() and any(out.iterdir()):
        if not (out / MARKER_FILE).is_file():
            raise UsageError(f"--out {str(out)!r} is not empty and was not written by "
                             f"`physioemo demo` (no {MARKER_FILE} in it); the demo only "
                             "replaces its own output; choose a new or empty --out.")
        for child in out.iterdir():
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child)
            else:
                child.unlink()
        replaced = True
    out.mkdir(parents=True, exist_ok=True)
    (out / MARKER_FILE).write_text("written by `physioemo demo`; demo.json appears when it "
                                   "has finished\n")
    return replaced


def _header(i, text):
    print(f"\n[{i}/{len(STEPS)}] {text}", flush=True)


def _common_flags(args):
    flags = ["-q"] if args.quiet else ["-v"] * int(args.verbose or 0)
    return flags + (["--debug"] if args.debug else [])


def _free_port():
    # TCPMarkers cannot report an OS-chosen port through `acquire`, so ask the OS for a
    # free one and hand it over (the window in which another program could take it is tiny)
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class _Experiment:
    """Send :data:`SCHEDULE` as TCP text markers once the recording has its first sample.

    Parameters
    ----------
    edf : Path
        The recording being written (its journal appears with the first sample).
    port : int
        TCP marker port of the acquisition.
    seconds : float
        Length of the recording (the schedule is in fractions of it).
    """

    def __init__(self, edf, port, seconds):
        self.edf = edf
        self.port = port
        self.seconds = seconds
        self.sent = []
        self.error = None

    def start(self):
        """Start the sender thread."""
        import threading

        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="demo-markers", daemon=True)
        self._thread.start()
        return self

    def stop(self):
        """Stop waiting and join the thread."""
        self._stop.set()
        self._thread.join(timeout=5.0)

    def _run(self):
        import socket
        import time

        from ..acquisition.recorder import journal_path
        from ..utils.logging import logger

        try:
            journal = journal_path(self.edf)
            while not journal.exists() and not self.edf.exists():
                if self._stop.wait(0.01):
                    return
            t0 = time.monotonic()
            with socket.create_connection(("127.0.0.1", self.port), timeout=5.0) as sock:
                for frac, text in SCHEDULE:
                    offset = frac * self.seconds
                    if self._stop.wait(max(0.0, t0 + offset - time.monotonic())):
                        return
                    sock.sendall((text + "\n").encode())
                    self.sent.append((round(time.monotonic() - t0, 3), text))
                    logger.info("experiment: marker %r sent at %.1f s", text,
                                time.monotonic() - t0)
        except OSError as err:
            self.error = err


def record(out, settings, args):
    """Step 1: record the synthetic board into EDF+ with TCP markers via ``acquire``.

    Returns
    -------
    info : dict
        Path, sample count, sampling frequency, channel names, markers and the sent
        schedule.
    """
    import mne

    from ..exceptions import DeviceError
    from ..utils.logging import logger

    folder = out / "recording"
    folder.mkdir()
    edf = folder / "recording.edf"
    seconds = float(settings["seconds"])
    port = _free_port()
    argv = ["acquire", "--device", "synthetic-epoc", "--out", str(edf), "--duration",
            f"{seconds:g}", "--markers", f"tcp:{port}", "--no-tui", *_common_flags(args)]
    logger.info("a scripted experiment will send %s to 127.0.0.1:%d",
                ", ".join(repr(t) for _, t in SCHEDULE), port)
    from .main import run_command

    experiment = _Experiment(edf, port, seconds).start()
    try:
        code = run_command(argv)
    finally:
        experiment.stop()
    if code != 0:
        raise DeviceError(f"recording the synthetic board failed (`physioemo acquire` exit "
                          f"code {code}, error above); check that BrainFlow is installed "
                          "(pip install 'physioemo[acquire]') and rerun.")
    if experiment.error is not None:
        logger.warning("the marker sender failed: %s", experiment.error)
    with open(folder / "schedule.tsv", "w") as fid:
        fid.write("sent_s\tmarker\n")
        fid.writelines(f"{t:.3f}\t{text}\n" for t, text in experiment.sent)
    raw = mne.io.read_raw_edf(edf, preload=True, verbose="error")
    if raw.n_times < round(seconds * raw.info["sfreq"]):
        # acquire stops cleanly on Ctrl-C and succeeds; the demo stops too
        logger.warning("the recording stopped after %.1f s of %g s; the demo stops (its "
                       "output is incomplete: no demo.json)", raw.n_times /
                       raw.info["sfreq"], seconds)
        raise KeyboardInterrupt
    wanted = {text for _, text in SCHEDULE}
    markers = [(float(a["onset"]), a["description"]) for a in raw.annotations
               if a["description"] in wanted]
    if len(markers) < len(experiment.sent):
        logger.warning("%d of %d sent markers are in the recording", len(markers),
                       len(experiment.sent))
    return {"edf": edf, "raw": raw, "n_times": int(raw.n_times),
            "sfreq": float(raw.info["sfreq"]), "ch_names": list(raw.ch_names),
            "markers": markers, "sent": experiment.sent}


def signal_summary(data, sfreq, out, *, title, channel_names=None):
    """Filter, compute band power/DE per 1-s window, plot, and return a text table.

    Parameters
    ----------
    data : ndarray, shape (n_channels, n_times)
        The signal.
    sfreq : float
        Sampling frequency in Hz.
    out : Path
        Folder for the plot (``<title>_bands.png``).
    title : str
        Name of the signal, used for the file name and plot title.
    channel_names : list of str | None
        Channel labels.

    Returns
    -------
    table : str
        Mean relative band power per channel, as text.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from ..dsp import (
        FREQ_BANDS,
        StreamingFilter,
        band_power,
        differential_entropy,
        filter_data,
        sliding_windows,
    )

    n_channels = data.shape[0]
    names = channel_names or [f"ch{i + 1}" for i in range(n_channels)]
    h_freq = min(45.0, 0.45 * sfreq)
    filtered = filter_data(data, sfreq, 1.0, h_freq)
    win = int(round(sfreq))
    windows = sliding_windows(filtered, win, win)            # (n_ch, n_win, win)
    rel = band_power(windows.swapaxes(0, 1), sfreq, relative=True).mean(axis=0)
    de = differential_entropy(windows.swapaxes(0, 1), sfreq).mean(axis=0)
    online = StreamingFilter(sfreq, n_channels, l_freq=1.0, h_freq=h_freq)
    chunks = [online.process(c) for c in np.array_split(data, max(1, data.shape[1] // 10),
                                                         axis=1)]
    causal = filter_data(data, sfreq, 1.0, h_freq, phase="causal")
    stream_err = float(np.max(np.abs(np.concatenate(chunks, axis=1) - causal)))

    bands = list(FREQ_BANDS)
    fig, ax = plt.subplots(figsize=(8, 3.5), layout="constrained")
    im = ax.imshow(rel.T * 100, aspect="auto", cmap="viridis")
    ax.set_yticks(range(len(bands)), bands)
    ax.set_xticks(range(n_channels), names, rotation=90)
    ax.set_title(f"{title}: relative band power per channel (%)")
    fig.colorbar(im, ax=ax)
    fig.savefig(out / f"{title}_bands.png", dpi=100)
    plt.close(fig)

    lines = [f"{'channel':>8} " + " ".join(f"{b:>7}" for b in bands) + "   DE(alpha)"]
    alpha = bands.index("alpha")
    for name, row, d in zip(names, rel, de, strict=True):
        lines.append(f"{name:>8} " + " ".join(f"{100 * v:6.1f}%" for v in row)
                     + f"   {d[alpha]:8.3f}")
    lines.append(f"streaming filter vs offline causal filter: max |diff| = {stream_err:.2e}")
    return "\n".join(lines)


def make_dreamer(out, settings):
    """Step 2: write a small DREAMER-format file and preprocess it (cached).

    Returns
    -------
    path : Path
        The generated file.
    data : ndarray, shape (n_subjects, n_clips, 14, 7680)
    labels : ndarray of int, shape (n_subjects, n_clips, 3)
    """
    from ..datasets import load_preprocessed, make_synthetic_dreamer

    folder = out / "dreamer"
    path = make_synthetic_dreamer(folder / "synthetic_dreamer.mat",
                                  n_subjects=int(settings["subjects"]),
                                  stimulus_seconds=CLIP_SECONDS, seed=int(settings["seed"]))
    data, labels = load_preprocessed(path, cache_dir=folder / "cache")
    return path, data, labels


def evaluate(out, data, labels, settings, notes):
    """Step 3: sd protocol with Gaussian and one-hot targets, evaluate-style output.

    Returns
    -------
    info : dict
        ``records`` (smoothing -> list of per-subject records), ``paths`` (tables and
        report) and ``checkpoint`` (the Gaussian model of the first subject).
    """
    from ..evaluation.protocols import run_protocol
    from ..evaluation.report import build_report

    folder = out / "evaluate"
    records = {}
    for smoothing in ("gaussian", "onehot"):
        records[smoothing] = run_protocol(
            "sd", data, labels, dimension="valence", epochs=int(settings["epochs"]),
            steps_per_epoch=int(settings["steps_per_epoch"]), smoothing=smoothing,
            seed=int(settings["seed"]), out_dir=folder / smoothing,
            n_threads=int(settings["threads"]), folds=list(QUICK_FOLDS),
            overrides=QUICK_RECIPE)
    paths = build_report([folder / "gaussian", folder / "onehot"], folder, notes=notes,
                         title="physioemo demo: sd, valence, Gaussian vs one-hot "
                               "(quick recipe)")
    ckpt = folder / "gaussian" / "checkpoints" / "subject01.pt"
    return {"records": records, "paths": paths, "checkpoint": ckpt}


def predict(out, rec, checkpoint, args):
    """Step 4: ``physioemo predict`` on the recording, the baseline marker as baseline.

    Returns
    -------
    info : dict
        CSV path, window starts (s), probabilities (n_windows, 5), baseline used.
    """
    import csv

    import numpy as np

    from ..exceptions import DataError

    folder = out / "prediction"
    folder.mkdir()
    csv_path = folder / "predictions.csv"
    onsets = dict((text, onset) for onset, text in reversed(rec["markers"]))
    seconds = rec["n_times"] / rec["sfreq"]
    if "baseline" in onsets and onsets.get("stimulus 1", 0.0) - onsets["baseline"] >= 1.0:
        b0 = onsets["baseline"]
        b_len = min(10.0, onsets["stimulus 1"] - b0)
        baseline = f"the 'baseline' marker segment ({b0:.2f} s + {b_len:.2f} s)"
    else:
        b0, b_len = 0.0, min(10.0, seconds / 2)
        baseline = f"the first {b_len:.2f} s (no usable 'baseline' marker)"
    argv = ["predict", "--checkpoint", str(checkpoint), "--edf", str(rec["edf"]), "--out",
            str(csv_path), "--baseline-start", f"{b0:.4f}", "--baseline-seconds",
            f"{b_len:.4f}", "--resample", *_common_flags(args)]
    from .main import run_command

    code = run_command(argv)
    if code != 0:
        raise DataError(f"applying the model to the recording failed (`physioemo predict` "
                        f"exit code {code}, error above); rerun the demo with --debug.")
    with open(csv_path) as fid:
        rows = list(csv.DictReader(fid))
    cols = [k for k in rows[0] if k.startswith("p_rating")]
    return {"csv": csv_path, "baseline": baseline,
            "start_s": np.array([float(r["start_s"]) for r in rows]),
            "proba": np.array([[float(r[c]) for c in cols] for r in rows]),
            "predicted": np.array([int(r["predicted_rating"]) for r in rows])}


def key_numbers(records):
    """Mean over subjects of weighted F1, accuracy and Seq2HR (%) per smoothing.

    Parameters
    ----------
    records : dict of str -> list of dict
        Per-(subject, fold) records of each smoothing.

    Returns
    -------
    numbers : dict of str -> dict of str -> float
    """
    import numpy as np

    out = {}
    for smoothing, recs in records.items():
        by_subject = {}
        for r in recs:
            by_subject.setdefault(r["subject"], []).append(r["metrics"])
        out[smoothing] = {m: float(np.mean([np.mean([x[m] for x in ms])
                                            for ms in by_subject.values()]))
                          for m in ("weighted_f1", "accuracy", "seq2hr")}
    return out


def _img(path_or_fig):
    import base64

    from ..evaluation.report import _png

    if hasattr(path_or_fig, "savefig"):
        return _png(path_or_fig)
    data = base64.b64encode(path_or_fig.read_bytes()).decode()
    return f"<img src='data:image/png;base64,{data}'/>"


def _signal_figure(rec, n_show=6):
    """Plot the filtered traces of the first channels with the markers."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from ..dsp import filter_data

    raw, sfreq = rec["raw"], rec["sfreq"]
    data = raw.get_data(picks=list(range(min(n_show, len(raw.ch_names)))), units="uV")
    data = filter_data(data, sfreq, 1.0, 45.0)
    t = np.arange(data.shape[1]) / sfreq
    spread = 4 * float(np.median(np.std(data, axis=1))) or 1.0
    fig, ax = plt.subplots(figsize=(10, 3.5), layout="constrained")
    for i, row in enumerate(data):
        ax.plot(t, row - i * spread, lw=0.5)
    ax.set_yticks([-i * spread for i in range(len(data))], raw.ch_names[:len(data)])
    for onset, text in rec["markers"]:
        ax.axvline(onset, color="k", ls="--", lw=0.8)
        ax.text(onset, 1.0, text, transform=ax.get_xaxis_transform(), fontsize=8,
                va="bottom")
    ax.set_xlabel("time (s)")
    ax.set_title("recording (1-45 Hz band-pass), markers from the EDF+ annotations", pad=16)
    return fig


def _prediction_figure(pred, rec):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, ax = plt.subplots(figsize=(10, 3), layout="constrained")
    proba = pred["proba"]
    # each window's probabilities hold until the next window starts; the last one for 1 s
    t = np.append(pred["start_s"], pred["start_s"][-1] + 1.0)
    ax.stackplot(t, np.vstack([proba, proba[-1:]]).T,
                 labels=[f"rating {k + 1}" for k in range(proba.shape[1])], step="post")
    for onset, text in rec["markers"]:
        ax.axvline(onset, color="k", ls="--", lw=0.8)
        ax.text(onset, 1.0, text, transform=ax.get_xaxis_transform(), fontsize=8,
                va="bottom")
    ax.set_xlim(t[0], t[-1])
    ax.set_ylim(0, 1)
    ax.set_xlabel("window start (s)")
    ax.set_ylabel("probability")
    ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8)
    ax.set_title("valence rating probabilities per 1-s window (HiSTN, Gaussian targets)",
                 pad=16)
    return fig


def write_report(out, summary, rec, pred, notes):
    """Step 5: the top-level self-contained HTML report.

    Returns
    -------
    path : Path
    """
    import html

    from ..utils.config import atomic_write_text

    esc = html.escape
    n = summary["numbers"]
    body = [f"<h1>physioemo demo</h1><p>{esc(summary['finished'])}, seed {summary['seed']}, "
            f"total {summary['seconds_total']:.0f} s.</p>"]
    body += [f"<p class='warn'>{esc(note)}</p>" for note in notes]
    body.append("<h2>Steps</h2><table><tr><th>#</th><th>step</th><th>seconds</th></tr>"
                + "".join(f"<tr><td>{i + 1}</td><td>{esc(s)}</td><td>{t:.1f}</td></tr>"
                          for i, (s, t) in enumerate(zip(STEPS, summary["step_seconds"],
                                                         strict=False)))
                + "</table>")
    r = summary["recording"]
    body.append(f"<h2>1. Recording</h2><p><code>{esc(r['edf'])}</code>: {r['n_times']} "
                f"samples at {r['sfreq']:g} Hz ({r['n_times'] / r['sfreq']:.1f} s), "
                f"{len(r['ch_names'])} channels ({esc(', '.join(r['ch_names']))}), device "
                "profile synthetic-epoc (BrainFlow synthetic board).</p>")
    body.append("<table><tr><th>marker</th><th>onset in the EDF+ (s)</th>"
                "<th>sent at (s after the first sample was seen)</th></tr>"
                + "".join(f"<tr><td>{esc(m)}</td><td>{o:.3f}</td><td>{s}</td></tr>"
                          for (o, m), s in zip(r["markers"], _sent_times(r), strict=True))
                + "</table>")
    body.append(_img(_signal_figure(rec)))
    body.append(_img(out / "recording" / "recording_bands.png"))
    body.append(f"<h2>2. Generated DREAMER-format file</h2><p><code>{esc(summary['dreamer'])}"
                f"</code>: {summary['subjects']} synthetic subjects, 18 clips of "
                f"{CLIP_SECONDS:g} s, ratings with a planted EEG effect.</p>")
    ev = summary["evaluate"]
    body.append("<h2>3. Evaluation (sd, valence; mean over subjects, fold 2)</h2>"
                f"<p>Full report: <a href='{esc(ev['report_rel'])}'>{esc(ev['report_rel'])}"
                "</a> (tables, learning curves, confusion matrices).</p>"
                "<table><tr><th>targets</th><th>weighted F1 (%)</th><th>accuracy (%)</th>"
                "<th>Seq2HR (%)</th></tr>"
                + "".join(f"<tr><td>{k}</td><td>{v['weighted_f1']:.2f}</td>"
                          f"<td>{v['accuracy']:.2f}</td><td>{v['seq2hr']:.2f}</td></tr>"
                          for k, v in n.items()) + "</table>"
                + "".join(f"<p class='warn'>{esc(t)}</p>" if "WARNING" in t else f"<p>{esc(t)}</p>"
                          for t in summary.get("verdicts", ())))
    p = summary["prediction"]
    body.append(f"<h2>4. Prediction on the recording</h2><p><code>{esc(p['csv'])}</code>: "
                f"{p['n_windows']} windows, model {esc(p['checkpoint'])}, baseline "
                f"{esc(p['baseline'])}; predicted ratings 1..5: {p['counts']}.</p>")
    body.append(_img(_prediction_figure(pred, rec)))
    style = ("body{font-family:sans-serif;max-width:1100px;margin:auto}"
             "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:3px 8px}"
             ".warn{color:#a00;font-weight:bold}img{max-width:100%}")
    doc = ("<!DOCTYPE html><html><head><meta charset='utf-8'><title>physioemo demo</title>"
           f"<style>{style}</style></head><body>" + "\n".join(body) + "</body></html>\n")
    path = out / "report.html"
    atomic_write_text(path, doc)
    return path


def _sent_times(r):
    sent = {}
    for t, text in r["sent"]:
        sent.setdefault(text, []).append(t)
    return [f"{sent[m].pop(0):.3f}" if sent.get(m) else "?" for _, m in r["markers"]]


def run(args):
    """Run the demo."""
    import datetime
    import json
    import sys
    import time
    from pathlib import Path

    import numpy as np

    from ..utils.config import atomic_write_text, write_run_metadata
    from ..utils.logging import logger

    settings = resolve_settings(args)
    _check(settings)
    out = Path(settings["out"])
    t_start = time.perf_counter()
    if prepare_out(out):
        logger.info("replaced the output of an earlier demo in %s", out)
    write_run_metadata(out, settings, seed=int(settings["seed"]),
                       command=["physioemo", "demo", *sys.argv[2:]] if sys.argv else None)
    recipe = (f"{settings['epochs']} epochs x {settings['steps_per_epoch']} batches of "
              f"{QUICK_RECIPE['batch_size']}, lr {QUICK_RECIPE['lr'][0]:g}, fold "
              f"{', '.join(map(str, QUICK_FOLDS))} of 10")
    notes = [f"QUICK RECIPE, not the paper's: {recipe} (the paper: 50 epochs of every "
             "batch of 256, all 10 folds).",
             "Everything is SYNTHETIC: a generated DREAMER-format file and BrainFlow's "
             "synthetic board. These numbers test the software; they say nothing about "
             "emotions in real EEG, and the prediction on the recording is a demonstration "
             "of the plumbing, not an estimate."]
    step_s = []

    def timed(i, func, *a):
        _header(i, STEPS[i - 1])
        t0 = time.perf_counter()
        result = func(*a)
        step_s.append(time.perf_counter() - t0)
        return result

    rec = timed(1, record, out, settings, args)
    print(f"{rec['edf']}: {rec['n_times']} samples at {rec['sfreq']:g} Hz, "
          f"{len(rec['ch_names'])} channels, markers: "
          + ", ".join(f"{text!r} at {onset:.2f} s" for onset, text in rec["markers"]),
          flush=True)
    print(signal_summary(rec["raw"].get_data(units="uV"), rec["sfreq"], out / "recording",
                         title="recording", channel_names=rec["ch_names"]), flush=True)

    path, data, labels = timed(2, make_dreamer, out, settings)
    print(f"{path}: {data.shape[0]} subjects x {data.shape[1]} clips, preprocessed to "
          f"{data.shape[2]} channels x {data.shape[3]} samples", flush=True)

    ev = timed(3, evaluate, out, data, labels, settings, notes)
    numbers = key_numbers(ev["records"])
    for smoothing, v in numbers.items():
        print(f"{smoothing:>8}: weighted F1 {v['weighted_f1']:6.2f} %, accuracy "
              f"{v['accuracy']:6.2f} %, Seq2HR {v['seq2hr']:6.2f} %", flush=True)
    from ..evaluation.report import summarize, verdicts

    said = [v["text"] for v in verdicts(summarize(
        [r for recs in ev["records"].values() for r in recs]))]
    print("\n".join(said), flush=True)

    pred = timed(4, predict, out, rec, ev["checkpoint"], args)

    _header(5, STEPS[4])
    t0 = time.perf_counter()
    counts = np.bincount(pred["predicted"] - 1, minlength=pred["proba"].shape[1]).tolist()
    summary = {
        "finished": datetime.datetime.now(datetime.timezone.utc).strftime(
            "%Y-%m-%d %H:%M UTC"),
        "seed": int(settings["seed"]), "settings": settings, "quick_recipe": recipe,
        "subjects": int(settings["subjects"]), "dreamer": str(path),
        "recording": {"edf": str(rec["edf"]), "n_times": rec["n_times"],
                      "sfreq": rec["sfreq"], "ch_names": rec["ch_names"],
                      "markers": rec["markers"], "sent": rec["sent"]},
        "numbers": numbers, "verdicts": said,
        "evaluate": {"folder": str(out / "evaluate"),
                     "report": str(ev["paths"]["html"]),
                     "report_rel": str(Path(ev["paths"]["html"]).relative_to(out)),
                     "results_csv": str(ev["paths"]["csv"]),
                     "fold_seeds": {k: [r["fold_seed"] for r in v]
                                    for k, v in ev["records"].items()}},
        "prediction": {"csv": str(pred["csv"]), "checkpoint": str(ev["checkpoint"]),
                       "n_windows": len(pred["predicted"]), "baseline": pred["baseline"],
                       "counts": counts},
        "step_seconds": step_s,
        "seconds_total": time.perf_counter() - t_start,
    }
    report = write_report(out, summary, rec, pred, notes)
    step_s.append(time.perf_counter() - t0)
    print(report, flush=True)

    _header(6, STEPS[5])
    summary["report"] = str(report)
    summary["seconds_total"] = time.perf_counter() - t_start
    summary["versions"] = json.loads((out / "run.json").read_text())["versions"]
    atomic_write_text(out / "demo.json", json.dumps(summary, indent=2, default=str))
    g, o = numbers["gaussian"], numbers["onehot"]
    rows = [
        ("report", str(report)),
        ("recording (EDF+)", f"{rec['edf']}  ({rec['n_times']} samples at "
                             f"{rec['sfreq']:g} Hz, {len(rec['markers'])} markers: "
                             + ", ".join(t for _, t in rec["markers"]) + ")"),
        ("DREAMER-format file", f"{path}  ({data.shape[0]} subjects x {data.shape[1]} "
                                "clips)"),
        ("evaluation", f"{out / 'evaluate'}  (report.html, results.csv, "
                       "gaussian/ and onehot/ with checkpoints/)"),
        ("weighted F1", f"Gaussian {g['weighted_f1']:.2f} %  vs one-hot "
                        f"{o['weighted_f1']:.2f} %"),
        ("Seq2HR", f"Gaussian {g['seq2hr']:.2f} %  vs one-hot {o['seq2hr']:.2f} %"),
        ("predictions", f"{pred['csv']}  ({len(pred['predicted'])} windows, ratings 1..5: "
                        f"{counts})"),
        ("settings", f"{out / 'config.yaml'}, {out / 'run.json'}, {out / 'demo.json'}"),
        ("time", f"{summary['seconds_total']:.0f} s  ("
                 + ", ".join(f"{i + 1}: {t:.1f} s" for i, t in enumerate(step_s)) + ")"),
    ]
    width = max(len(k) for k, _ in rows)
    print("\n".join(f"  {k:<{width}}  {v}" for k, v in rows))
    print("\n" + "\n".join(notes), flush=True)
    return 0
