"""Entry point of the ``physioemo`` command.

Commands are modules registered in :data:`COMMANDS`. Each module defines ``HELP`` (one
line), ``DESCRIPTION`` (with examples), ``add_arguments(parser)`` and ``run(args) -> int``,
and imports heavy libraries only inside ``run``. A user mistake prints one line and exits
with code 2 (usage) or 1 (data/device); a traceback is shown only with ``--debug``.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from .. import __version__
from ..exceptions import DataError, DeviceError, PhysioEmoError

#: Command name -> module implementing it (order is the order shown in ``--help``).
COMMANDS = {
    "demo": "physioemo.cli.demo",
    "acquire": "physioemo.cli.acquire",
    "recover": "physioemo.cli.recover",
    "devices": "physioemo.cli.devices",
    "evaluate": "physioemo.cli.evaluate",
    "predict": "physioemo.cli.predict",
    "tune": "physioemo.cli.tune",
    "info": "physioemo.cli.info",
    "synth-dreamer": "physioemo.cli.synth_dreamer",
}


def _add_common(parser):
    group = parser.add_argument_group("common options")
    group.add_argument("-v", "--verbose", action="count", default=0,
                       help="more log output (repeat for debug)")
    group.add_argument("-q", "--quiet", action="store_true",
                       help="only warnings and errors; no progress bars")
    group.add_argument("--config", metavar="FILE", default=None,
                       help="YAML file whose keys are the command's option names")
    group.add_argument("--seed", type=int, default=None, metavar="K",
                       help="random seed (default: the command's, recorded with results)")
    group.add_argument("--debug", action="store_true",
                       help="show full tracebacks on errors")


class _Parser(argparse.ArgumentParser):
    """ArgumentParser whose errors are one line, exit code 2."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser():
    """Build the argument parser with every registered command."""
    parser = _Parser(prog="physioemo",
                     description="EEG and physiological emotion recognition.",
                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"physioemo {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name, modname in COMMANDS.items():
        mod = importlib.import_module(modname)
        p = sub.add_parser(name, help=mod.HELP, description=getattr(mod, "DESCRIPTION", None),
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        mod.add_arguments(p)
        _add_common(p)
        p.set_defaults(_module=mod)
    return parser


def main(argv=None):
    """Run the ``physioemo`` command line and return its exit code.

    Parameters
    ----------
    argv : list of str | None
        Arguments without the program name; ``None`` reads ``sys.argv``.

    Returns
    -------
    code : int
        0 on success, 1 for data/device errors, 2 for usage errors, 130 on Ctrl-C.
    """
    from ..utils.config import warn_unknown_env
    from ..utils.logging import configure_logging

    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version and usage errors
        return int(exc.code or 0)
    if args.command is None:
        parser.print_help()
        return 2
    configure_logging(-1 if args.quiet else args.verbose)
    warn_unknown_env()
    try:
        return int(args._module.run(args) or 0)
    except KeyboardInterrupt:
        if args.debug:
            raise
        print("physioemo: interrupted", file=sys.stderr)
        return 130
    except PhysioEmoError as err:
        if args.debug:
            raise
        print(f"physioemo {args.command}: error: {err}", file=sys.stderr)
        return 1 if isinstance(err, (DataError, DeviceError)) else 2


def run_command(argv, *, check=False):
    """Run ``physioemo ARGV`` in this process, as pipelines and ``demo`` do.

    Prints the command line first and sets ``sys.argv`` to it meanwhile, so the command
    records the command that really ran (``run.json``, the EDF+ sidecar).

    Parameters
    ----------
    argv : list of str
        Arguments without the program name, e.g. ``["evaluate", "--out", "run"]``.
    check : bool
        Exit the process with a one-line message if the command fails.

    Returns
    -------
    code : int
        The command's exit code (see :func:`main`).
    """
    argv = [str(a) for a in argv]
    print("$ physioemo " + " ".join(argv), flush=True)
    saved = sys.argv
    sys.argv = ["physioemo", *argv]
    try:
        code = main(argv)
    finally:
        sys.argv = saved
    if check and code != 0:
        sys.exit(f"physioemo {argv[0]} failed (exit code {code})")
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
