"""Build docs/benchmarks.md from the result tables in benchmarks/results/.

The page starts with a headline table (physioemo against each peer, one ratio per
benchmark, taken from the result files) and then reproduces every result file with the
command and date it came from. Nothing is measured here: rerun a benchmark to update its
``benchmarks/results/<name>.md``, then rerun this script. ``tests/test_docs.py`` fails when
the committed page differs from what this script makes, so the page cannot go stale.

Result files of smoke runs (``*-quick.md``) are left out. A headline whose number cannot
be found (a result file changed its layout) stops the script with the reason.

Usage::

    .venv/bin/python benchmarks/make_page.py            # writes docs/benchmarks.md
    .venv/bin/python benchmarks/make_page.py --check    # exit 1 if the page is stale
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
PAGE = ROOT / "docs" / "benchmarks.md"

#: Order of the sections (other result files follow alphabetically).
ORDER = ("dsp.md", "dreamer.md", "train.md", "train-1thread.md", "train-cuda.md", "acquire.md",
         "markers.md", "tune.md")

_DATE = re.compile(r"\b(20\d\d-\d\d-\d\d(?:[ T]\d\d:\d\d(?::\d\d)?)?(?: ?UTC)?)")


def result_files(results=RESULTS):
    """Return the result files shown on the page, in page order."""
    files = [p for p in results.glob("*.md") if not p.stem.endswith("-quick")]
    rank = {name: i for i, name in enumerate(ORDER)}
    return sorted(files, key=lambda p: (rank.get(p.name, len(ORDER)), p.name))


def parse_tables(text):
    """Return every Markdown table of ``text`` as a list of ``{header: cell}`` rows."""
    tables, block = [], []
    for line in text.splitlines() + [""]:
        if line.startswith("|"):
            block.append([c.strip() for c in line.strip().strip("|").split("|")])
            continue
        if len(block) >= 2 and set("".join(block[1])) <= set("-: "):
            header = block[0]
            tables.append([dict(zip(header, row, strict=False)) for row in block[2:]])
        block = []
    return tables


def find_cell(text, first, row_start, column, *, where):
    """Return the cell in ``column`` of the first table row whose ``first`` cell starts
    with ``row_start``; raise ``LookupError`` naming ``where`` if there is none."""
    for table in parse_tables(text):
        for row in table:
            if row.get(first, "").startswith(row_start) and column in row:
                return row[column]
    raise LookupError(f"{where}: no table row with {first!r} starting {row_start!r} and a "
                      f"column {column!r}; update the headline in benchmarks/make_page.py")


def find_text(text, pattern, *, where):
    """Return group 1 of the first match of ``pattern`` in ``text`` (``LookupError`` if none)."""
    m = re.search(pattern, text)
    if m is None:
        raise LookupError(f"{where}: pattern {pattern!r} not found; update the headline in "
                          "benchmarks/make_page.py")
    return m.group(1)


def headlines(texts):
    """Rows ``(what, physioemo vs peer, ratio, source)`` of the headline table."""
    rows = []
    if "dsp.md" in texts:
        t, w = texts["dsp.md"], "dsp.md"
        for target, label, peer in (
                ("offline >= 2x scipy", "zero-phase band-pass + band power of 1-s windows",
                 "SciPy"),
                ("offline >= 20x mne", "zero-phase band-pass + band power of 1-s windows",
                 "MNE"),
                ("offline >= 15x brainflow", "zero-phase band-pass + band power of 1-s windows",
                 "BrainFlow"),
                ("streaming >= 15x scipy", "streaming band-pass, 10-sample chunks",
                 "SciPy `sosfilt(zi=...)`")):
            rows.append((label, peer, find_cell(t, "target", target, "measured", where=w), w))
    if "dreamer.md" in texts:
        t, w = texts["dreamer.md"], "dreamer.md"
        label = "full DREAMER-layout file: load + 1-s windows + band DE"
        rows.append((label, "TorchEEG (extrapolated from 3 subjects)",
                     find_cell(t, "contender", "physioemo-lazy", "x TorchEEG", where=w), w))
        rows.append((label, "vectorised SciPy",
                     find_cell(t, "contender", "physioemo-lazy", "x scipy", where=w), w))
    for name, threads in (("train.md", "2 threads"), ("train-1thread.md", "1 thread")):
        if name in texts:
            t = texts[name]
            label = f"HiSTN training step, batch 256, CPU {threads}"
            row = "physioemo HiSTN"  # the first row: physioemo's model as it runs
            rows.append((label, "the literal conv2d head (same model)",
                         find_cell(t, "model", row, "vs literal", where=name), name))
            rows.append((label, "TF/Keras reference (4,200 windows/s, quoted)",
                         find_cell(t, "model", row, "vs Keras reference (4,200/s)",
                                   where=name), name))
            if threads == "2 threads":
                rows.append(("HiSTN training, batch 256, CPU, one single-threaded worker per "
                             "core (`evaluate --jobs 2 --threads 1`)",
                             "TF/Keras reference (4,200 windows/s, quoted)",
                             find_cell(t, "model", "physioemo HiSTN, 2 worker processes",
                                       "vs Keras reference (4,200/s)", where=name), name))
    if "train-cuda.md" in texts:
        t, w = texts["train-cuda.md"], "train-cuda.md"
        gpu = find_text(t, r"device: cuda \(([^)]+)\)", where=w)
        label = f"HiSTN training step, batch 256, {gpu}, whole step as a CUDA graph"
        row = "physioemo HiSTN, whole step as a CUDA graph"
        rows.append((label, "the literal conv2d head (same model, eager, same GPU)",
                     find_cell(t, "model", row, "vs literal", where=w), w))
        rows.append((label, "TF/Keras reference (4,200 windows/s on 2 CPU cores, quoted)",
                     find_cell(t, "model", row, "vs Keras reference (4,200/s)", where=w), w))
    if "acquire.md" in texts:
        t, w = texts["acquire.md"], "acquire.md"
        ratio = find_text(t, r"Median ratio scipy / physioemo DSP: ([0-9]+(?:\.[0-9]+)?)",
                          where=w)
        rows.append(("online filter + band power per 10-sample chunk (median)",
                     "SciPy `sosfilt(zi=...)` + rFFT band power", f"{ratio}x", w))
        lost = find_text(t, r"\*\*Lost samples: ([0-9]+)\*\*", where=w)
        rows.append(("samples lost, 30 min of data through the playback board at 30x",
                     "— (target 0)", lost, w))
    if "tune.md" in texts:
        t, w = texts["tune.md"], "tune.md"
        ratio = find_text(t, r"2 workers vs 1: ([0-9.]+x) by wall clock", where=w)
        rows.append(("`physioemo tune --jobs 2`, 8 small HiSTN trials, journal storage "
                     "(wall clock)", "`--jobs 1`", ratio, w))
    return rows


def command_of(text):
    """The command a result file says produced it (first backticked ``benchmarks/*.py``)."""
    m = re.search(r"`([^`]*benchmarks/[\w-]+\.py[^`]*)`", text)
    return m.group(1).strip() if m else None


def date_of(path, text):
    """The date a result file says it was measured, else the latest ``when`` of its JSON."""
    m = re.search(r"Date:\s*" + _DATE.pattern, text) or _DATE.search(text)
    if m:
        return m.group(1)
    sidecar = path.with_suffix(".json")
    if sidecar.is_file():
        whens = re.findall(r'"when":\s*"([^"]+)"', sidecar.read_text())
        if whens:
            return max(whens) + " (from " + sidecar.name + ")"
    return None


def _demote(text):
    """Shift Markdown headings one level down and drop the file's own title line."""
    out = []
    lines = text.strip().splitlines()
    if lines and lines[0].startswith("# "):
        lines = lines[1:]
    for line in lines:
        out.append("#" + line if re.match(r"^#{1,5} ", line) else line)
    return "\n".join(out).strip()


def render(results=RESULTS):
    """Return the page's Markdown text."""
    files = result_files(results)
    texts = {p.name: p.read_text() for p in files}
    lines = [
        "# Benchmarks",
        "",
        "<!-- Generated by `.venv/bin/python benchmarks/make_page.py` from "
        "benchmarks/results/*.md; do not edit by hand. -->",
        "",
        "physioemo's speed measured side by side with the tools our users use today, in one "
        "process per benchmark. Every number below is copied from a result file in "
        "[`benchmarks/results/`](../benchmarks/results/); each section names the command "
        "that wrote it and when. Unless a section says otherwise (the GPU run names its "
        "machine), the machine is a 2-core x86_64 VM, and most runs were taken while other "
        "jobs shared it: the ratios are measured side by side in the same run, the absolute "
        "times are pessimistic.",
        "",
        "## Headline: physioemo against each peer",
        "",
        "| job | physioemo vs | physioemo speed-up (or value) | source |",
        "|---|---|---:|---|",
    ]
    for what, peer, value, src in headlines(texts):
        lines.append(f"| {what} | {peer} | {value} | [{src}](#{_anchor(src)}) |")
    lines += ["", "To reproduce a section, run its command from the repository root, then "
              "rebuild this page with `.venv/bin/python benchmarks/make_page.py`.", ""]
    for p in files:
        text = texts[p.name]
        title = text.strip().splitlines()[0].lstrip("# ").strip()
        cmd = command_of(text)
        date = date_of(p, text)
        lines += [f"## {p.name}", "",
                  f"**{title}** — source: [`benchmarks/results/{p.name}`]"
                  f"(../benchmarks/results/{p.name})  ",
                  f"Command: `{cmd}`  " if cmd else "Command: not recorded in the file  ",
                  f"Date: {date}" if date else "Date: not recorded in the file", "",
                  _demote(text), ""]
    return "\n".join(lines).rstrip() + "\n"


def _anchor(name):
    """GitHub's anchor for a heading ``## name``."""
    return re.sub(r"[^\w\- ]", "", name.lower()).replace(" ", "-")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--check", action="store_true",
                   help="do not write; exit 1 if docs/benchmarks.md is not up to date")
    args = p.parse_args(argv)
    text = render()
    if args.check:
        if not PAGE.is_file() or PAGE.read_text() != text:
            print(f"{PAGE} is stale; run: .venv/bin/python benchmarks/make_page.py",
                  file=sys.stderr)
            return 1
        return 0
    PAGE.parent.mkdir(parents=True, exist_ok=True)
    PAGE.write_text(text)
    print(f"wrote {PAGE.relative_to(ROOT)} from {len(result_files())} result file(s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
