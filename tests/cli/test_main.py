import subprocess
import sys

import pytest

from physioemo import __version__
from physioemo.cli import main as cli_main


def test_version(capsys):
    assert cli_main.main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"physioemo {__version__}"


def test_no_command_prints_help(capsys):
    assert cli_main.main([]) == 2
    assert "COMMAND" in capsys.readouterr().out


def test_unknown_command_is_one_line(capsys):
    assert cli_main.main(["frobnicate"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "invalid choice: 'frobnicate'" in err[0]


@pytest.mark.parametrize("name", list(cli_main.COMMANDS))
def test_every_command_has_help(name, capsys):
    assert cli_main.main([name, "--help"]) == 0
    out = capsys.readouterr().out
    assert "--debug" in out and "example" in out.lower()


def test_user_error_is_one_line_without_traceback(tmp_path, capsys, monkeypatch):
    from physioemo.exceptions import ParameterError

    class Boom:
        HELP = "x"

        @staticmethod
        def add_arguments(parser):
            pass

        @staticmethod
        def run(args):
            raise ParameterError("order=0 is out of range; choose order >= 1.")

    monkeypatch.setitem(cli_main.COMMANDS, "boom", "boom_mod")
    monkeypatch.setitem(sys.modules, "boom_mod", Boom)
    assert cli_main.main(["boom"]) == 2
    err = capsys.readouterr().err
    assert err == "physioemo boom: error: order=0 is out of range; choose order >= 1.\n"
    with pytest.raises(ParameterError):
        cli_main.main(["boom", "--debug"])


def test_entry_point_runs():
    exe = __import__("shutil").which("physioemo") or str(
        __import__("pathlib").Path(sys.executable).with_name("physioemo"))
    res = subprocess.run([exe, "--version"], capture_output=True, text=True, check=True)
    assert res.stdout.strip() == f"physioemo {__version__}"


def test_run_command_records_its_own_command_line(monkeypatch, capsys):
    cli = cli_main
    seen = []
    monkeypatch.setattr(cli, "main", lambda argv: seen.append(list(sys.argv)) or 3)
    before = list(sys.argv)
    assert cli.run_command(["evaluate", "--out", 5]) == 3
    assert seen == [["physioemo", "evaluate", "--out", "5"]]  # what run.json records
    assert sys.argv == before
    assert "$ physioemo evaluate --out 5" in capsys.readouterr().out
    with pytest.raises(SystemExit, match=r"physioemo evaluate failed \(exit code 3\)"):
        cli.run_command(["evaluate"], check=True)
    assert sys.argv == before
