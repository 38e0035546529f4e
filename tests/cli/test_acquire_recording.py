"""`physioemo acquire` as separate processes: a live recording is owned, markers' ports."""

import json
import signal
import socket
import subprocess
import sys
import time

import mne

from physioemo.acquisition.recorder import journal_path
from physioemo.cli.main import main


def _acquire(*argv, **kw):
    return subprocess.Popen([sys.executable, "-m", "physioemo.cli.main", "acquire",
                             "--device", "synthetic", "--no-tui", *map(str, argv)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw)


def _errors(stderr):
    lines = [line for line in stderr.strip().splitlines()
             if " INFO " not in line and " WARNING " not in line]
    assert "Traceback" not in stderr
    return lines


def test_force_never_touches_a_live_recording(tmp_path, capsys):
    out = tmp_path / "cd.edf"
    first = _acquire("--out", out, "--duration", 60, "-q")
    samples = journal_path(out) / "samples.f64"
    try:
        deadline = time.monotonic() + 60
        while not (samples.exists() and samples.stat().st_size > 16 * 8 * 250):
            assert first.poll() is None, first.stderr.read().decode()
            assert time.monotonic() < deadline
            time.sleep(0.05)
        # a second process, with and without --force: refused, naming the live owner
        for extra in ([], ["--force"]):
            second = _acquire("--out", out, "--duration", 1, *extra)
            _, err = second.communicate(timeout=60)
            assert second.returncode == 1
            (line,) = _errors(err.decode())
            assert f"recording is in progress into '{journal_path(out)}'" in line
            assert f"process {first.pid} on" in line and "not even with --force" in line
            assert "crash" not in line
        assert main(["recover", str(out), "--force"]) == 1  # recover refuses it too
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and f"process {first.pid}" in err
        assert first.poll() is None  # still recording
        n_before_stop = samples.stat().st_size // (16 * 8)
        first.send_signal(signal.SIGINT)  # a clean stop at the next whole second
        stdout, stderr = first.communicate(timeout=60)
    finally:
        if first.poll() is None:
            first.kill()
    assert first.returncode == 0, stderr.decode()
    assert stdout.decode().strip() == str(out)
    raw = mne.io.read_raw_edf(out, verbose="error")
    # the first recording, intact: every sample it had when stopped, whole seconds
    assert raw.n_times >= n_before_stop and raw.n_times % 250 == 0
    meta = json.loads(out.with_suffix(".json").read_text())
    assert meta["n_times"] == raw.n_times and meta["recovered"] is False
    assert meta["padded_samples"] == 0 and not journal_path(out).exists()


def test_markers_on_port_0_say_which_port_and_keep_what_arrives(tmp_path):
    out = tmp_path / "m.edf"
    proc = _acquire("--out", out, "--duration", 3, "--markers", "tcp:0", "udp:0")
    ports = {}
    deadline = time.monotonic() + 60
    while len(ports) < 2:  # read the log as it comes: the ports are needed to send
        line = proc.stderr.readline().decode()
        assert line or proc.poll() is None, "acquire ended before listening"
        assert time.monotonic() < deadline
        if "listening for" in line:
            kind, port = line.split("listening for ")[1].split(" markers on 127.0.0.1:")
            ports[kind] = int(port)
    assert all(p > 0 for p in ports.values())
    with socket.create_connection(("127.0.0.1", ports["TCP"])) as sock:
        sock.sendall(b"over tcp\n")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.sendto(b"over udp \xff", ("127.0.0.1", ports["UDP"]))
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err.decode()
    meta = json.loads(out.with_suffix(".json").read_text())
    # the two transports race: compare by origin
    got = {m["origin"]: m for m in meta["markers"]}
    assert len(meta["markers"]) == 2 and got["tcp"]["description"] == "over tcp"
    assert got["udp"]["description"] == "over udp \\xff"
    assert got["udp"]["bytes_base64"] == "b3ZlciB1ZHAg/w=="  # b"over udp \xff"


def test_a_busy_marker_port_is_one_line_and_never_claimed(tmp_path):
    out = tmp_path / "busy.edf"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        proc = _acquire("--out", out, "--duration", 1, "--markers", f"tcp:{port}")
        _, err = proc.communicate(timeout=60)
    err = err.decode()
    assert proc.returncode == 1
    (line,) = _errors(err)
    assert f"cannot listen for TCP markers on 127.0.0.1:{port}" in line
    assert "listening" not in err
    assert not out.exists() and not journal_path(out).exists()
