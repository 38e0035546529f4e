"""``physioemo devices``: list the device profiles."""

from __future__ import annotations

HELP = "list the headset profiles that `physioemo acquire --device` accepts"
DESCRIPTION = """List the device profiles (devices/*.yaml): name, BrainFlow board id, channels,
sampling rate and the connection parameters each needs.

examples:
  physioemo devices
  physioemo devices --name cyton      # channel names of one profile
"""


def add_arguments(parser):
    """Add the command's options."""
    parser.add_argument("--name", default=None, metavar="DEVICE",
                        help="show every field of one profile")


def run(args):
    """List the profiles."""
    from ..acquisition.profiles import CONNECTION_FLAGS, list_profiles, load_profile

    if args.name:
        prof = load_profile(args.name)
        for key, value in prof.to_dict().items():
            print(f"{key:13s} {value}")
        return 0
    rows = [("device", "board", "channels", "Hz", "connection", "description")]
    for prof in list_profiles():
        conn = " ".join(f"{CONNECTION_FLAGS[k]} X" for k in prof.required)
        conn += "".join(f" [{CONNECTION_FLAGS[k]} X]" for k in prof.optional)
        rows.append((prof.name, "-" if prof.board_id is None else str(prof.board_id),
                     str(prof.n_channels) if prof.ch_names else f"({prof.master})",
                     "-" if prof.sfreq is None else f"{prof.sfreq:g}",
                     conn.strip() or "-", prof.description))
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=False)) + "  " + row[5])
    return 0
