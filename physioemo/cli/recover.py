"""``physioemo recover``: rebuild the EDF+ of a recording that crashed."""

from __future__ import annotations

HELP = "rebuild a valid EDF+/BDF+ from the journal of a crashed recording"
DESCRIPTION = """Rebuild the EDF+ (or BDF+) of a recording that was interrupted by a crash,
a power loss or kill -9, from its journal (FILE.edf.journal/). At most the last second
before the crash is lost; the sidecar JSON is marked "recovered": true.

A recording that is still running (its process holds the journal's lock) is refused.
Every readable sample is kept: a damaged header.json is replaced by its copy
header.bak.json; unreadable annotation lines are reported and kept in the sidecar
("journal_problems"); NaN/inf samples are written as 0 under a "BAD physioemo: NaN/inf
written as 0" annotation and counted per channel ("nonfinite_samples").

examples:
  physioemo recover session1.edf
  physioemo recover session1.edf --force   # replace an existing session1.edf
"""


def add_arguments(parser):
    """Add the command's options."""
    parser.add_argument("path", metavar="FILE.edf",
                        help="the --out path of the crashed recording (or its .journal)")
    parser.add_argument("--force", action="store_true",
                        help="replace an existing output file")


def run(args):
    """Recover the recording."""
    import json

    from ..acquisition.recorder import recover, sidecar_path
    from ..utils.logging import logger

    path = recover(args.path, force=args.force)
    meta = json.loads(sidecar_path(path).read_text())
    logger.info("recovered %s: %.1f s, %d annotations", path, meta["duration_s"],
                meta["n_annotations"])
    print(path)
    return 0
