"""The documentation cannot go stale: generated pages match, relative links resolve."""

import importlib.util
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _make_page():
    spec = importlib.util.spec_from_file_location("make_page", ROOT / "benchmarks" /
                                                  "make_page.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_benchmarks_page_matches_results():
    page = ROOT / "docs" / "benchmarks.md"
    assert page.read_text() == _make_page().render(), (
        "docs/benchmarks.md is stale; run .venv/bin/python benchmarks/make_page.py")


def test_make_page_reads_numbers_commands_and_dates(tmp_path):
    mp = _make_page()
    (tmp_path / "tune.md").write_text(
        "# Tune bench\n\nCommand: `.venv/bin/python benchmarks/tune.py --trials 3`\n\n"
        "2 workers vs 1: 1.25x by wall clock, 1.90x by busy time.\n")
    (tmp_path / "train.md").write_text(
        "# Train bench\n\nCommand: `.venv/bin/python benchmarks/train.py`\n"
        "Date: 2030-01-02 03:04 UTC; device: cpu\n\n## Step\n\n"
        "| model | ms / step | vs literal | vs Keras reference (4,200/s) |\n"
        "|---|---:|---:|---:|\n"
        "| physioemo HiSTN | 1.0 | 7.50x | 9.25x |\n"
        "| literal conv2d head (same model) | 7.5 | 1.00x | 1.23x |\n"
        "| physioemo HiSTN, PyTorch operators only | 2.5 | 3.00x | 3.70x |\n"
        "| physioemo HiSTN, 2 worker processes x 1 thread | 0.8 | 9.00x | 11.10x |\n")
    (tmp_path / "dsp-quick.md").write_text("# smoke run, left out\n")
    assert [p.name for p in mp.result_files(tmp_path)] == ["train.md", "tune.md"]
    texts = {p.name: p.read_text() for p in mp.result_files(tmp_path)}
    rows = mp.headlines(texts)
    assert [(r[2], r[3]) for r in rows] == [("7.50x", "train.md"), ("9.25x", "train.md"),
                                            ("11.10x", "train.md"), ("1.25x", "tune.md")]
    page = mp.render(tmp_path)
    assert "Date: 2030-01-02 03:04 UTC" in page
    assert "Command: `.venv/bin/python benchmarks/tune.py --trials 3`" in page
    assert "Date: not recorded in the file" in page  # tune.md has no date
    assert "### Step" in page and "smoke run" not in page  # headings demoted one level
    # a result file whose layout changed stops the script instead of dropping a number
    (tmp_path / "tune.md").write_text("# Tune bench\n\nno ratio here\n")
    with pytest.raises(LookupError, match="tune.md"):
        mp.render(tmp_path)


def _links(text):
    """Relative link targets of Markdown links/images and HTML src/href, outside code."""
    text = re.sub(r"```.*?```", "", text, flags=re.S)
    text = re.sub(r"`[^`\n]*`", "", text)
    targets = re.findall(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)", text)
    targets += re.findall(r"""(?:src|href)=["']([^"']+)["']""", text)
    return [t for t in targets
            if not re.match(r"^[a-z][a-z0-9+.-]*:", t, re.I) and not t.startswith("#")]


def _doc_files():
    files = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    return [f for f in files if f.is_file()]


def test_link_checker_finds_links():
    text = ("see [a](docs/a.md#x) and ![img](img/b.png \"t\") <img src='c.svg'> "
            "[web](https://x.org) [top](#top) `[no](code.md)`\n```\n[no](block.md)\n```\n")
    assert _links(text) == ["docs/a.md#x", "img/b.png", "c.svg"]


@pytest.mark.parametrize("doc", _doc_files(), ids=lambda p: p.name)
def test_relative_links_resolve(doc):
    # README fragments (docs/_readme*.md) are written for the README's folder.
    base = ROOT if doc.name.startswith("_readme") else doc.parent
    missing = []
    for target in _links(doc.read_text()):
        path = target.split("#", 1)[0]
        if path and not (base / path).exists():
            missing.append(target)
    assert not missing, f"{doc.relative_to(ROOT)} links to missing files: {missing}"


def _shell_lines(text):
    """Commands (lists of words) of the ``bash`` blocks of ``text``.

    Continuations are joined; comments dropped; ``|``, ``;``, ``&&`` and ``&`` split
    commands (outside quotes).
    """
    import shlex

    commands = []
    for block in re.findall(r"^```(?:bash|sh)[ \t]*\n(.*?)^```", text, flags=re.M | re.S):
        block = re.sub(r"\\\n\s*", " ", block)
        for line in block.splitlines():
            lex = shlex.shlex(line, posix=True, punctuation_chars=";&|")
            lex.whitespace_split = True
            words = []
            for tok in lex:
                if tok and set(tok) <= set(";&|"):
                    if words:
                        commands.append(words)
                    words = []
                else:
                    words.append(tok)
            if words:
                commands.append(words)
    return commands


def _physioemo_options(name):
    from physioemo.cli import main as cli_main

    parser = cli_main.build_parser()
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    return {s for a in sub.choices[name]._actions for s in a.option_strings}


def _pipeline_options(path):
    import contextlib
    import io

    spec = importlib.util.spec_from_file_location(f"_doc_{path.stem}", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf), pytest.raises(SystemExit):
        mod.parse_args(["--help"])
    return set(re.findall(r"(?<![\w-])(--?[A-Za-z][\w-]*)", buf.getvalue()))


def test_shell_line_parser():
    text = ("```bash\nphysioemo tune --a 1 \\\n    --b 2   # why\n"
            "echo x | nc -q0 h 1; python pipelines/p.py --c\n```\n")
    assert _shell_lines(text) == [["physioemo", "tune", "--a", "1", "--b", "2"],
                                  ["echo", "x"], ["nc", "-q0", "h", "1"],
                                  ["python", "pipelines/p.py", "--c"]]
    assert _shell_lines("```bash\npsql -c \"A; B\" && x &\n```\n") == [
        ["psql", "-c", "A; B"], ["x"]]


@pytest.mark.parametrize("doc", _doc_files(), ids=lambda p: p.name)
def test_documented_commands_use_existing_options(doc):
    from physioemo.cli.main import COMMANDS

    problems = []
    for words in _shell_lines(doc.read_text()):
        line = " ".join(words)
        while words and re.match(r"^[A-Z_][A-Z0-9_]*=", words[0]):
            words = words[1:]  # VAR=value prefixes
        if not words:
            continue
        prog = Path(words[0]).name
        if prog == "physioemo" and len(words) > 1:
            if words[1] not in COMMANDS:
                problems.append(f"{line!r}: no command {words[1]!r}")
                continue
            known, args = _physioemo_options(words[1]), words[2:]
        elif prog.startswith("python") and len(words) > 1 and \
                words[1].startswith("pipelines/"):
            path = ROOT / words[1]
            if not path.is_file():
                problems.append(f"{line!r}: no file {words[1]}")
                continue
            known, args = _pipeline_options(path), words[2:]
        else:
            continue
        bad = [a.split("=", 1)[0] for a in args
               if a.startswith("-") and a.split("=", 1)[0] not in known]
        if bad:
            problems.append(f"{line!r}: unknown options {bad}")
    assert not problems, f"{doc.relative_to(ROOT)}:\n" + "\n".join(problems)


def _quoted_measurements(text):
    """``(numbers, result file)`` of every table row whose last cell names a result file.

    Rows look like ``| what | 14.66 ms (17,458 windows/s) | `benchmarks/results/train.md`,
    date |``; the numbers are those of the second-to-last cell.
    """
    out = []
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if not line.startswith("|") or len(cells) < 3:
            continue
        m = re.search(r"`(?:benchmarks/results/)?([\w.-]+\.md)`", cells[-1])
        if m:
            out.append((re.findall(r"\d[\d,]*(?:\.\d+)?", cells[-2]), m.group(1)))
    return out


def test_quoted_measurement_parser():
    text = ("| what | measured | source |\n|---|---|---|\n"
            "| step | 14.66 ms (17,458 windows/s) | `benchmarks/results/train.md`, x |\n"
            "| sd | about 5 min | `train-cuda.md` |\n")
    assert _quoted_measurements(text) == [(["14.66", "17,458"], "train.md"),
                                          (["5"], "train-cuda.md")]


@pytest.mark.parametrize("doc", [d for d in _doc_files() if d.name != "benchmarks.md"],
                         ids=lambda p: p.name)
def test_quoted_measurements_match_results(doc):
    stale = []
    for numbers, name in _quoted_measurements(doc.read_text()):
        source = ROOT / "benchmarks" / "results" / name
        assert source.is_file(), f"{doc.name} quotes {name}, which does not exist"
        text = source.read_text()
        stale += [f"{n} (from {name})" for n in numbers if n not in text]
    assert not stale, (f"{doc.relative_to(ROOT)} quotes numbers no longer in the results: "
                       f"{stale}; update the quotes from benchmarks/results/")
