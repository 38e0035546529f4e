"""Every command's ``--help`` shows examples, and the examples use real options."""

import re
import shlex

import pytest

from physioemo.cli import main as cli_main


def _examples(text):
    """Return the example command lines after the "example(s):" header of a help text.

    Continuation lines (ending in a backslash) are joined; comments are dropped.
    """
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines)
                  if re.match(r"^examples?:\s*$", line.strip(), re.IGNORECASE)), None)
    if start is None:
        return []
    out, pending = [], ""
    for line in lines[start + 1:]:
        if not line.strip():
            if pending:
                out.append(pending)
                pending = ""
            if out:
                break  # the section ends at the first blank line after an example
            continue
        if not line.startswith(" "):
            break  # next section header
        pending += " " + line.strip()
        if pending.endswith("\\"):
            pending = pending[:-1]
            continue
        out.append(" ".join(pending.split(" #", 1)[0].split()))
        pending = ""
    if pending:
        out.append(" ".join(pending.split(" #", 1)[0].split()))
    return out


def _subparser(name):
    parser = cli_main.build_parser()
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    return sub.choices[name]


def _options(parser):
    return {s for a in parser._actions for s in a.option_strings}


def test_examples_parser_on_known_text():
    text = ("intro\n\nexamples:\n  physioemo x --a 1 \\\n      --b 2   # note\n"
            "  echo hi | nc host 1\n\nStop with q.\n")
    assert _examples(text) == ["physioemo x --a 1 --b 2", "echo hi | nc host 1"]
    assert _examples("no section here\n") == []


@pytest.mark.parametrize("name", list(cli_main.COMMANDS))
def test_help_has_examples_of_the_command(name, capsys):
    assert cli_main.main([name, "--help"]) == 0
    out = capsys.readouterr().out
    examples = _examples(out)
    assert any(re.match(rf"^physioemo {re.escape(name)}(\s|$)", ex) for ex in examples), \
        f"`physioemo {name} --help` shows no example line `physioemo {name} ...`:\n{out}"


@pytest.mark.parametrize("name", list(cli_main.COMMANDS))
def test_help_examples_use_existing_options(name, capsys):
    assert cli_main.main([name, "--help"]) == 0
    examples = _examples(capsys.readouterr().out)
    checked = 0
    for ex in examples:
        for part in ex.split("|"):
            words = shlex.split(part.split("#", 1)[0])
            # skip leading VAR=value environment assignments
            while words and re.match(r"^[A-Z_][A-Z0-9_]*=", words[0]):
                words = words[1:]
            if len(words) < 2 or words[0] != "physioemo":
                continue
            cmd = words[1]
            assert cmd in cli_main.COMMANDS, f"example {ex!r} names an unknown command"
            known = _options(_subparser(cmd))
            flags = [w.split("=", 1)[0] for w in words[2:] if w.startswith("-")]
            unknown = [f for f in flags if f not in known]
            assert not unknown, f"example {ex!r} uses options {unknown} that " \
                                f"`physioemo {cmd}` does not have"
            checked += 1
    assert checked >= 1
