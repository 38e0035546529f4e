"""Run the README's "try it now" commands and fail if one of them fails.

Every fenced ``bash`` block that directly follows a line ``<!-- check -->`` in the given
Markdown files is run, in file order, with ``bash -euo pipefail`` in one fresh temporary
folder (so later blocks see the files earlier blocks wrote). The folder links the
repository's ``pipelines/``, ``configs/`` and ``devices/``, so commands written for the
repository root work there, and the repository's ``.venv/bin`` (when present) comes first
on ``PATH``, so ``physioemo`` and ``python`` are the project's. Blocks without the marker
(real headsets, the real DREAMER file, PostgreSQL servers) are not run.

CI runs it from a clean clone after ``make setup``::

    .venv/bin/python docs/check_readme.py README.md

Usage::

    .venv/bin/python docs/check_readme.py README.md docs/_readme_jobs.md [--keep DIR]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MARKER = "<!-- check -->"
LINKED = ("pipelines", "configs", "devices")


def checked_blocks(text):
    """Return the ``bash`` blocks that follow a ``<!-- check -->`` line.

    Parameters
    ----------
    text : str
        Markdown.

    Returns
    -------
    blocks : list of str
        The code of each marked block, without the fences.
    """
    pattern = re.compile(r"^" + re.escape(MARKER) + r"[ \t]*\n```(?:bash|sh)[ \t]*\n(.*?)^```",
                         re.M | re.S)
    return [m.group(1) for m in pattern.finditer(text)]


def run_blocks(blocks, work, *, timeout_s=900):
    """Run ``blocks`` one after the other in ``work``; return the failures.

    Returns
    -------
    failures : list of (str, int, str)
        ``(block, exit code, last lines of output)`` of each failed block; after the first
        failure the remaining blocks are not run.
    """
    env = dict(os.environ)
    venv_bin = ROOT / ".venv" / "bin"
    if venv_bin.is_dir():
        env["PATH"] = f"{venv_bin}{os.pathsep}{env.get('PATH', '')}"
    for key in [k for k in env if k.startswith("PHYSIOEMO_")]:
        del env[key]  # no local DREAMER path, storage or settings: a clean clone's view
    env["PHYSIOEMO_CACHE_DIR"] = str(Path(work) / ".cache")
    env["MPLBACKEND"] = "Agg"
    for name in LINKED:
        link = Path(work) / name
        if (ROOT / name).exists() and not link.exists():
            link.symlink_to(ROOT / name, target_is_directory=True)
    failures = []
    for i, block in enumerate(blocks, 1):
        print(f"--- block {i}/{len(blocks)}\n{block.rstrip()}", flush=True)
        t0 = time.perf_counter()
        try:
            res = subprocess.run(["bash", "-euo", "pipefail", "-c", block], cwd=work, env=env,
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                 timeout=timeout_s)
            code, out = res.returncode, res.stdout
        except subprocess.TimeoutExpired as err:
            code = 124
            out = (err.stdout or b"").decode(errors="replace") if isinstance(
                err.stdout, bytes) else (err.stdout or "")
            out += f"\n(timed out after {timeout_s} s)"
        print(f"    exit {code} in {time.perf_counter() - t0:.1f} s", flush=True)
        if code != 0:
            tail = "\n".join(out.strip().splitlines()[-30:])
            failures.append((block, code, tail))
            break
    return failures


def main(argv=None):
    """Parse the command line, run the marked blocks and report."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("files", nargs="+", help="Markdown files (e.g. README.md)")
    p.add_argument("--keep", metavar="DIR", help="run in DIR and keep it (default: a "
                   "temporary folder, deleted afterwards)")
    p.add_argument("--timeout", type=float, default=900, help="seconds per block (900)")
    args = p.parse_args(argv)
    blocks = []
    for name in args.files:
        blocks += checked_blocks(Path(name).read_text())
    if not blocks:
        print(f"no '{MARKER}' blocks in {args.files}", file=sys.stderr)
        return 1
    if args.keep:
        work = Path(args.keep)
        work.mkdir(parents=True, exist_ok=True)
        failures = run_blocks(blocks, work, timeout_s=args.timeout)
    else:
        work = tempfile.mkdtemp(prefix="physioemo-readme-")
        try:
            failures = run_blocks(blocks, work, timeout_s=args.timeout)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    if failures:
        block, code, tail = failures[0]
        print(f"\nFAILED (exit {code}):\n{block}\n--- output (last lines)\n{tail}",
              file=sys.stderr)
        return 1
    print(f"all {len(blocks)} checked block(s) ran without error")
    return 0


if __name__ == "__main__":
    sys.exit(main())
