"""Convert physioemo / BrainFlow recordings to MNE- and BIDS-friendly EDF+.

What it does
------------
For every input recording:

* a physioemo ``.edf``/``.bdf`` (from ``physioemo acquire``, with its sidecar ``.json``) is
  read with MNE;
* a BrainFlow CSV (``DataFilter.write_file``; needs ``--device``, the profile that recorded
  it) is first turned into EDF+ by replaying it through ``physioemo acquire --device
  playback --master DEVICE --speed 50`` (the same code that records a headset, so channel
  names, units and ranges come from the device profile; BrainFlow's marker channel is not
  carried over);

then it is written into a BIDS-like folder (mne-bids is not a dependency of physioemo, so the
layout and sidecars are written here by hand, following BIDS-EEG 1.9)::

    BIDS_ROOT/dataset_description.json
    BIDS_ROOT/participants.tsv
    BIDS_ROOT/sub-<S>/[ses-<X>/]eeg/sub-<S>[_ses-<X>]_task-<T>_run-<NN>_eeg.edf
                                            ..._eeg.json      (sampling rate, line frequency,
                                                               device, duration)
                                            ..._channels.tsv  (name, type, units, status)
                                            ..._events.tsv    (onset, duration, sample,
                                                               trial_type)

The EDF+ (16 bit, :func:`physioemo.acquisition.recorder.write_edf`) has MNE-style labels
(``"EEG Fz"``: ``mne.io.read_raw_edf(..., infer_types=True)`` gives type ``eeg`` and name
``Fz``), 10-20 names spelled as in MNE's ``standard_1020`` montage (``FP1`` -> ``Fp1``),
physical units (uV), the recording's start time, and every marker and quality event of the
original as an EDF+ annotation (also listed in ``events.tsv``). A channel that the recording's
telemetry found flat or railed for more than half of the recording is ``bad`` in
``channels.tsv``.

Expected run time: a few seconds per hour of 16-channel recording (EDF read + write);
BrainFlow CSV inputs add the replay (duration / 50).
``--tiny``: records 3 s from the synthetic board with ``physioemo acquire`` and converts it,
about 10 s.

Examples
--------
    python pipelines/convert_recordings.py s01.edf s02.edf --bids-root bids --subject 01 \\
        --task film
    python pipelines/convert_recordings.py raw/*.csv --device cyton --bids-root bids \\
        --subject 02 --session 1 --task rest
    python pipelines/convert_recordings.py --tiny --bids-root /tmp/bids
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

#: BIDS version of the sidecars written here.
BIDS_VERSION = "1.9.0"
#: Scale from volts (MNE's unit) to each EDF physical unit.
TO_UNIT = {"uV": 1e6, "µV": 1e6, "mV": 1e3, "V": 1.0}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("inputs", nargs="*", help="physioemo .edf/.bdf or BrainFlow CSV files")
    p.add_argument("--bids-root", required=True, help="output BIDS-like folder")
    p.add_argument("--subject", default="01", help="BIDS subject label (default 01)")
    p.add_argument("--session", help="BIDS session label (default: none)")
    p.add_argument("--task", default="rest", help="BIDS task label (default rest)")
    p.add_argument("--device", help="profile that recorded BrainFlow CSV inputs")
    p.add_argument("--tiny", action="store_true",
                   help="CI mode: record 3 s from the synthetic board and convert it")
    args = p.parse_args(argv)
    if not args.inputs and not args.tiny:
        p.error("give at least one recording (or --tiny)")
    return args


def physioemo_exe():
    exe = Path(sys.executable).with_name("physioemo")
    return str(exe) if exe.exists() else "physioemo"


def acquire(extra, out):
    """Run ``physioemo acquire`` to ``out`` with ``extra`` arguments; return ``out``."""
    cmd = [physioemo_exe(), "acquire", "--out", str(out), "--no-tui", "-q", *extra]
    subprocess.run(cmd, check=True)
    return Path(out)


def to_edf(path, device, tmpdir):
    """A physioemo EDF+/BDF+ for ``path`` (BrainFlow CSV files are replayed into one)."""
    path = Path(path)
    if path.suffix.lower() in (".edf", ".bdf"):
        return path
    if not device:
        sys.exit(f"{path} looks like a BrainFlow CSV: pass --device with the profile that "
                 "recorded it (see `physioemo devices`)")
    return acquire(["--device", "playback", "--file", str(path), "--master", device,
                    "--speed", "50"], Path(tmpdir) / f"{path.stem}.edf")


def mne_names(names):
    """Spell 10-20 names as MNE's standard_1020 montage does (``FP1`` -> ``Fp1``)."""
    import mne

    # MNE >= 1.13 calls the standard_1020 template colin27_1020 (the old name is deprecated)
    builtin = mne.channels.get_builtin_montages()
    kind = "colin27_1020" if "colin27_1020" in builtin else "standard_1020"
    canon = {n.lower(): n for n in mne.channels.make_standard_montage(kind).ch_names}
    return [canon.get(n.strip().lower(), n.strip()) for n in names]


def bad_channels(sidecar, duration_s):
    """Channels flat or railed for more than half the recording (from its telemetry)."""
    tel = sidecar.get("telemetry", {})
    bad = {}
    for kind in ("flat_s", "railed_s"):
        for ch, secs in (tel.get(kind) or {}).items():
            if secs > duration_s / 2:
                bad[ch] = f"{kind[:-2]} for {secs:g} s"
    return bad


def write_tsv(path, rows, fields):
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields, delimiter="\t", lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def convert(edf, bids_root, *, subject, session, task, run):
    """Write one recording into ``bids_root``; return the path of the new EDF+."""
    import mne

    from physioemo.acquisition.recorder import PADDING_ANNOTATION, sidecar_path, write_edf

    raw = mne.io.read_raw_edf(edf, preload=True, verbose="error")
    side = sidecar_path(edf)
    sidecar = json.loads(side.read_text()) if side.exists() else {}
    profile = sidecar.get("profile", {})
    units = sidecar.get("units") or profile.get("units") or "uV"
    data = raw.get_data() * TO_UNIT.get(units, 1e6)
    sfreq = raw.info["sfreq"]
    names = mne_names(raw.ch_names)
    pmin = sidecar.get("physical_min", profile.get("physical_min"))
    pmax = sidecar.get("physical_max", profile.get("physical_max"))
    if pmin is None or pmax is None:  # no sidecar: a symmetric range round the data
        pmax = float(np.ceil(np.abs(data).max() * 1.1 + 1e-9))
        pmin = -pmax
    ann = [{"onset": float(a["onset"]), "duration": float(a["duration"]),
            "description": a["description"]} for a in raw.annotations
           if a["description"] != PADDING_ANNOTATION]

    parts = [f"sub-{subject}"] + ([f"ses-{session}"] if session else [])
    folder = Path(bids_root, *parts, "eeg")
    folder.mkdir(parents=True, exist_ok=True)
    stem = "_".join(parts + [f"task-{task}", f"run-{run:02d}"])
    out = folder / f"{stem}_eeg.edf"
    start = raw.info["meas_date"].timestamp() if raw.info["meas_date"] else None
    write_edf(out, data, sfreq, [f"EEG {n}" for n in names], physical_min=pmin,
              physical_max=pmax, units=units, annotations=ann, start_time=start,
              equipment=f"physioemo:{sidecar.get('layout_device', '')}")

    duration = data.shape[1] / sfreq
    eeg_json = {
        "TaskName": task, "SamplingFrequency": sfreq, "EEGChannelCount": len(names),
        "PowerLineFrequency": profile.get("line_freq", "n/a"),
        "EEGReference": "n/a", "SoftwareFilters": "n/a", "RecordingType": "continuous",
        "RecordingDuration": duration,
        "ManufacturersModelName": profile.get("description", "n/a"),
        "CapManufacturersModelName": "n/a",
        "EEGPlacementScheme": profile.get("montage", "n/a"),
        "SourceFile": str(Path(edf).name),
    }
    (folder / f"{stem}_eeg.json").write_text(json.dumps(eeg_json, indent=2) + "\n")
    bad = bad_channels(sidecar, duration)
    write_tsv(folder / f"{stem}_channels.tsv",
              [{"name": n, "type": "EEG", "units": units, "sampling_frequency": sfreq,
                "status": "bad" if o in bad else "good",
                "status_description": bad.get(o, "n/a")}
               for n, o in zip(names, raw.ch_names, strict=True)],
              ["name", "type", "units", "sampling_frequency", "status", "status_description"])
    write_tsv(folder / f"{stem}_events.tsv",
              [{"onset": f"{a['onset']:.6f}", "duration": f"{a['duration']:.6f}",
                "sample": int(round(a["onset"] * sfreq)), "trial_type": a["description"]}
               for a in ann], ["onset", "duration", "sample", "trial_type"])
    return out


def write_dataset_files(bids_root, subject):
    root = Path(bids_root)
    desc = root / "dataset_description.json"
    if not desc.exists():
        desc.write_text(json.dumps({"Name": "physioemo recordings", "BIDSVersion": BIDS_VERSION,
                                    "DatasetType": "raw",
                                    "GeneratedBy": [{"Name": "physioemo convert_recordings"}]},
                                   indent=2) + "\n")
    part = root / "participants.tsv"
    have = part.read_text().split("\n")[1:] if part.exists() else []
    ids = sorted({line.split("\t")[0] for line in have if line} | {f"sub-{subject}"})
    part.write_text("participant_id\n" + "".join(f"{i}\n" for i in ids))


def main(argv=None):
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="physioemo-convert-") as tmp:
        inputs = list(args.inputs)
        if args.tiny:
            inputs.append(acquire(["--device", "synthetic", "--duration", "3"],
                                  Path(tmp) / "tiny.edf"))
        written = []
        for run, path in enumerate(inputs, start=1):
            edf = to_edf(path, args.device, tmp)
            out = convert(edf, args.bids_root, subject=args.subject, session=args.session,
                          task=args.task, run=run)
            written.append(out)
            print(f"{path} -> {out}")
    write_dataset_files(args.bids_root, args.subject)
    print(f"\n{len(written)} recording(s) in {args.bids_root}; read one with\n"
          f"  mne.io.read_raw_edf({str(written[0])!r}, infer_types=True)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
