"""Regenerate the pictures in docs/img/ from real physioemo runs.

* ``live-view.svg``: the live terminal view of ``physioemo acquire`` (the same
  :func:`physioemo.acquisition.view.render` the command draws), captured at the end of a
  14-s recording of BrainFlow's synthetic board with the DREAMER channel names
  (``--device synthetic-epoc``), one TCP marker and live predictions of the checkpoint that
  the evaluation below wrote (``--normalization causal``, so that ``--model`` accepts it;
  they start one window after a 10-s baseline), exported with
  rich's ``Console(record=True).save_svg``.
* ``report-subjects.png``, ``report-confusion.png``, ``report-seq2hr.png``: the plots of
  the ``report.html`` that a tiny ``physioemo evaluate --smoothing both`` run (causal
  normalisation) writes on a
  generated DREAMER-format file (per-subject bars, confusion matrix with learning curves,
  Gaussian vs one-hot Seq2HR), decoded from the report as they are embedded there. The
  numbers in them come from a few training steps on synthetic data and mean nothing.

Takes about 2 minutes on 2 cores (most of it the evaluation). Usage, from the repository
root::

    .venv/bin/python docs/make_images.py                 # all pictures
    .venv/bin/python docs/make_images.py --only live     # just the live view (no model)
"""

from __future__ import annotations

import argparse
import base64
import html
import re
import sys
import tempfile
import threading
from pathlib import Path

IMG = Path(__file__).resolve().parent / "img"


class _Capture:
    """A live view that keeps the last state it was shown."""

    state = None

    def start(self):
        """Nothing to open."""

    def update(self, state):
        """Keep ``state``."""
        self.state = state

    def stop(self):
        """Nothing to close."""


def live_view(out, work, *, checkpoint=None, duration_s=14.0, width=96):
    """Record ``duration_s`` of the synthetic board and save the final live view as SVG."""
    import io

    from rich.console import Console

    from physioemo.acquisition.brainflow_source import BrainFlowSource
    from physioemo.acquisition.markers import MarkerHub
    from physioemo.acquisition.profiles import load_profile
    from physioemo.acquisition.recorder import Recorder
    from physioemo.acquisition.session import Acquisition
    from physioemo.acquisition.view import render

    source = BrainFlowSource(load_profile("synthetic-epoc"))
    dev = source.device
    rec = Path(work) / "session.edf"
    recorder = Recorder(rec, source.ch_names, source.sfreq, physical_min=dev.physical_min,
                        physical_max=dev.physical_max, units=dev.units, force=True)
    hub = MarkerHub()
    view = _Capture()
    predictor = None
    if checkpoint is not None:
        from physioemo.inference.live import load_predictor

        predictor = load_predictor(checkpoint, source.ch_names, source.sfreq)
    acq = Acquisition(source, recorder, hub=hub, view=view, predictor=predictor)
    # what `echo "stim 3" | nc -q0 127.0.0.1 5000` does during `--markers tcp:5000`
    timer = threading.Timer(duration_s / 3, hub.add, args=("stim 3", "tcp"))
    timer.start()
    try:
        acq.run(duration_s)
    finally:
        timer.cancel()
    state = dict(view.state)
    state["file"] = "session.edf"  # not the temporary path
    console = Console(record=True, width=width, file=io.StringIO(), force_terminal=True,
                      color_system="truecolor")
    console.print(render(state))
    title = "physioemo acquire --device synthetic-epoc --out session.edf"
    if checkpoint is not None:
        title += " --model subject01.pt"
    console.save_svg(str(out), title=title)
    return out


def report_pictures(out_dir, work):
    """Run a tiny evaluation and save three of its report's plots as PNG files."""
    from physioemo.cli.main import run_command

    run = Path(work) / "eval"
    run_command(["evaluate", "--protocol", "sd", "--subjects", "1", "2", "3",
                 "--epochs", "3", "--steps-per-epoch", "10", "--smoothing", "both",
                 "--normalization", "causal",  # its checkpoint serves the live view
                 "--threads", "1", "--seed", "0", "-q", "--out", str(run)], check=True)
    page = (run / "report.html").read_text()
    # each plot is an <img src='data:image/png;base64,...'/> after its section heading
    images = re.findall(r"(<h[23]>([^<]*)</h[23]>)?<img src='data:image/png;base64,([^']+)'",
                        page)
    named = {}
    last_heading = None
    for _, heading, data in images:
        heading = html.unescape(heading) if heading else None
        if heading:
            last_heading = heading
            first = True
        else:
            first = False
        if last_heading and last_heading.endswith("gaussian") and first:
            named["report-subjects.png"] = data
        elif last_heading and last_heading.endswith("gaussian"):
            named["report-confusion.png"] = data
        elif last_heading and last_heading.startswith("Gaussian vs one-hot"):
            named["report-seq2hr.png"] = data
    missing = {"report-subjects.png", "report-confusion.png", "report-seq2hr.png"} - set(named)
    if missing:
        sys.exit(f"report.html did not contain the plots for {sorted(missing)}")
    paths = []
    for name, data in sorted(named.items()):
        path = Path(out_dir) / name
        path.write_bytes(base64.b64decode(data))
        paths.append(path)
    return paths


def main(argv=None):
    """Parse the command line and write the pictures."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", choices=("live", "report"), help="make only these pictures")
    p.add_argument("--out-dir", default=str(IMG), help="where the pictures go (docs/img)")
    args = p.parse_args(argv)
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    made = []
    with tempfile.TemporaryDirectory(prefix="physioemo-docs-") as work:
        if args.only in (None, "report"):
            made += report_pictures(out_dir, work)
        if args.only in (None, "live"):
            ckpt = Path(work) / "eval" / "gaussian" / "checkpoints" / "subject01.pt"
            made.append(live_view(out_dir / "live-view.svg", work,
                                  checkpoint=ckpt if ckpt.is_file() else None))
    for path in made:
        print(f"{path}  {path.stat().st_size / 1024:.0f} kB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
