"""``physioemo acquire``: record a headset to EDF+ with markers, live quality and features."""

from __future__ import annotations

HELP = "record a headset (BrainFlow) to EDF+ with markers, live quality and band power"
DESCRIPTION = """Record EEG from a headset (or BrainFlow's synthetic/playback boards) to EDF+
(.edf, 16 bit) or BDF+ (.bdf, 24 bit), with markers and quality events as annotations, a
sidecar JSON (FILE.json) and a crash-safe journal (see `physioemo recover`). Online, the
same stateful filter and band power as offline run on every chunk and are shown live.

examples:
  physioemo acquire --device synthetic --out test.edf --duration 10 --no-tui
  physioemo acquire --device cyton --serial-port /dev/ttyUSB0 --out s01.bdf \\
      --markers tcp:5000 lsl:PsychoPyMarkers keyboard
  physioemo acquire --device playback --file s01.edf --out replay.edf --speed 10
  echo "stim 3" | nc -q0 127.0.0.1 5000      # send a marker while recording

Stop with --duration, Ctrl-C or q (a clean stop finishes the current second and loses
nothing). Devices: `physioemo devices`. With tcp:0 or udp:0 the log says which port was
bound. Every marker is kept whole in the sidecar (FILE.json, "markers"); the EDF+ holds
at most 64 annotations per second and 40 bytes of text each, and the sidecar and the log
say exactly which markers it shortened or could not hold. --force never touches a
recording that is still running (its process holds the journal's lock).

With --model (a checkpoint of `physioemo evaluate --normalization causal`), the first
--baseline-s seconds (10) are the normalisation baseline; then every --update-s a rating is
predicted from the latest window and appended to FILE.live-predictions.csv with the sample
index and time of the window's end and the checkpoint's path and SHA-256 (also in the
sidecar); `physioemo predict --checkpoint CKPT --edf FILE --baseline-seconds S` reproduces
those probabilities on the finished recording.
"""

#: Every option (config-file keys are these names) with its default.
DEFAULTS = {
    "device": None, "serial_port": None, "mac": None, "ip": None, "ip_port": None,
    "file": None, "master": None, "speed": 1.0, "out": None, "duration": None,
    "markers": None, "l_freq": 1.0, "h_freq": 45.0, "notch": "auto", "kind": "power",
    "window_s": 1.0, "update_s": 0.25, "stall_s": 2.0, "model": None,
    "baseline_s": 10.0, "lsl_out": False,
    "no_tui": False, "force": False,
}


def add_arguments(parser):
    """Add the command's options."""
    dev = parser.add_argument_group("device")
    dev.add_argument("--device", metavar="NAME", help="device profile (see `physioemo devices`)")
    dev.add_argument("--serial-port", metavar="PORT", help="serial port of the dongle")
    dev.add_argument("--mac", metavar="ADDR", help="Bluetooth MAC address (Ganglion)")
    dev.add_argument("--ip", metavar="ADDR", help="IP address of a WiFi shield")
    dev.add_argument("--ip-port", type=int, metavar="PORT", help="local port (WiFi shield)")
    dev.add_argument("--file", metavar="PLAYBACK",
                     help="playback device: BrainFlow CSV or physioemo .edf/.bdf to replay")
    dev.add_argument("--master", metavar="NAME",
                     help="playback device: profile of the device that recorded --file")
    dev.add_argument("--speed", type=float, metavar="X",
                     help="playback device: replay X times faster (default 1)")
    out = parser.add_argument_group("recording")
    out.add_argument("--out", metavar="FILE.edf", help="output .edf (EDF+) or .bdf (BDF+)")
    out.add_argument("--duration", type=float, metavar="S",
                     help="stop after S seconds of data (default: until Ctrl-C)")
    out.add_argument("--markers", nargs="*", metavar="SPEC",
                     help="marker sources: tcp:PORT udp:PORT lsl[:NAME] keyboard "
                          "(default: keyboard in the live view)")
    out.add_argument("--force", action="store_true", default=None,
                     help="replace an existing output file")
    online = parser.add_argument_group("online processing")
    online.add_argument("--l-freq", type=float, metavar="HZ", help="high-pass (default 1)")
    online.add_argument("--h-freq", type=float, metavar="HZ", help="low-pass (default 45)")
    online.add_argument("--notch", metavar="HZ",
                        help="notch frequency, 'none', or 'auto' (profile line freq)")
    online.add_argument("--kind", choices=("power", "de"), help="band power or DE")
    online.add_argument("--window-s", type=float, metavar="S", help="band window (1 s)")
    online.add_argument("--update-s", type=float, metavar="S", help="update every S (0.25)")
    online.add_argument("--stall-s", type=float, metavar="S",
                        help="no data for S seconds is a stall (default 2)")
    online.add_argument("--model", metavar="CKPT",
                        help="HiSTN checkpoint trained with `evaluate --normalization "
                             "causal` for live predictions (after a 10-s baseline at the "
                             "start), each written with its sample time to "
                             "FILE.live-predictions.csv")
    online.add_argument("--baseline-s", dest="baseline_s", type=float, metavar="S",
                        help="--model: the first S seconds are the baseline of the causal "
                             "normalisation (default 10; `predict --baseline-seconds S` "
                             "uses the same)")
    online.add_argument("--lsl-out", action="store_true", default=None,
                        help="publish filtered EEG and band powers as LSL streams")
    online.add_argument("--no-tui", action="store_true", default=None,
                        help="plain log lines instead of the live terminal view")


def _settings(args):
    from ..utils.config import load_config, resolve

    config = load_config(args.config, allowed=DEFAULTS) if args.config else None
    cli = {k: getattr(args, k, None) for k in DEFAULTS}
    return resolve(DEFAULTS, config, cli)


def _notch(value):
    from ..exceptions import ParameterError

    if value is None or str(value).lower() == "none":
        return None
    if str(value).lower() == "auto":
        return "auto"
    try:
        return float(value)
    except ValueError:
        raise ParameterError(f"--notch must be a frequency in Hz, 'auto' or 'none', got "
                             f"{value!r}; write e.g. --notch 50.") from None


def run(args):
    """Acquire."""
    import sys

    from ..acquisition.brainflow_source import BrainFlowSource
    from ..acquisition.markers import MarkerHub, make_listeners, parse_marker_specs
    from ..acquisition.profiles import load_profile
    from ..acquisition.recorder import Recorder, check_output
    from ..acquisition.session import Acquisition
    from ..acquisition.view import LogView, TerminalView
    from ..exceptions import UsageError
    from ..utils.config import versions
    from ..utils.logging import logger

    s = _settings(args)
    for key in ("device", "out"):
        if not s[key]:
            raise UsageError(f"--{key} is required; pass e.g. --device synthetic --out "
                             "rec.edf (see `physioemo acquire --help`).")
    profile = load_profile(s["device"])
    out = check_output(s["out"], force=bool(s["force"]), inputs=(s["file"], s["model"]))
    live_path = None
    if s["model"]:
        from ..inference.live import live_predictions_path
        from ..utils._checks import check_output_path

        live_path = check_output_path(live_predictions_path(out), force=bool(s["force"]),
                                      inputs=(s["file"], s["model"]),
                                      name="live predictions file")
    source = BrainFlowSource(profile, serial_port=s["serial_port"], mac_address=s["mac"],
                             ip_address=s["ip"], ip_port=s["ip_port"], file=s["file"],
                             master=s["master"], speed=s["speed"])
    dev = source.device
    if out.suffix.lower() == ".edf" and (dev.adc_bits or 16) > 16:
        step = (dev.physical_max - dev.physical_min) / 65535
        logger.warning("%s is a %d-bit device: 16-bit EDF stores %.2f %s steps; write .bdf "
                       "to keep its resolution", dev.name, dev.adc_bits, step, dev.units)
    tui = not s["no_tui"] and sys.stderr.isatty()
    specs = parse_marker_specs(s["markers"])
    if s["markers"] is None and tui and sys.stdin.isatty():
        specs = [("keyboard", None)]
    hub = MarkerHub()
    listeners = make_listeners(specs, hub)
    predictor = None
    if s["model"]:
        from ..inference.live import load_predictor

        predictor = load_predictor(s["model"], source.ch_names, source.sfreq,
                                   baseline_s=s["baseline_s"], predictions=live_path,
                                   force=bool(s["force"]))
    outlet = None
    if s["lsl_out"]:
        from ..acquisition.lsl_outlet import LSLOutlet

        outlet = LSLOutlet(source.ch_names, source.sfreq)
    meta = {"device": profile.name, "layout_device": dev.name, "profile": dev.to_dict(),
            "command": ["physioemo", "acquire", *sys.argv[2:]] if sys.argv else None,
            "settings": {k: v for k, v in s.items()}, "versions": versions()}
    recorder = Recorder(out, source.ch_names, source.sfreq, physical_min=dev.physical_min,
                        physical_max=dev.physical_max, units=dev.units, force=bool(s["force"]),
                        metadata=meta, equipment=f"physioemo:{dev.name}")
    view = TerminalView() if tui else LogView()
    acq = Acquisition(source, recorder, l_freq=s["l_freq"], h_freq=s["h_freq"],
                      notch=_notch(s["notch"]), kind=s["kind"], window_s=s["window_s"],
                      update_s=s["update_s"], stall_s=s["stall_s"], listeners=listeners,
                      hub=hub, view=view, predictor=predictor, outlet=outlet)
    summary = acq.run(s["duration"])
    tel = summary["telemetry"]
    logger.info("recorded %.1f s to %s: %d markers, %d samples dropped, %.2f Hz achieved",
                summary["duration_s"], summary.get("file"), summary["n_markers"],
                tel["dropped_samples"], tel["achieved_sfreq"] or float("nan"))
    live = summary.get("live_predictions")
    if live and live.get("file"):
        logger.info("%d live predictions -> %s", live["n_predictions"],
                    live_path.name)
    if summary.get("file"):
        print(summary["file"])
    return 0
