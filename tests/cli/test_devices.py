"""`physioemo devices` lists the profiles."""

from physioemo.cli.main import main


def test_lists_every_profile(capsys):
    assert main(["devices"]) == 0
    out = capsys.readouterr().out
    for name in ("synthetic", "playback", "cyton", "cyton-daisy", "ganglion", "cyton-wifi",
                 "cyton-daisy-wifi", "ganglion-wifi", "emotiv-epoc"):
        assert any(line.split()[0] == name for line in out.splitlines()[1:]), name
    cyton = next(line for line in out.splitlines() if line.startswith("cyton "))
    assert cyton.split()[1:4] == ["0", "8", "250"] and "--serial-port" in cyton


def test_one_profile(capsys):
    assert main(["devices", "--name", "emotiv-epoc"]) == 0
    out = capsys.readouterr().out
    assert "AF3" in out and "128.0" in out


def test_unknown_profile(capsys):
    assert main(["devices", "--name", "muse"]) == 2
    assert "unknown device 'muse'" in capsys.readouterr().err
