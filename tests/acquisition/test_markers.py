"""Marker sources: loopback TCP/UDP text markers and LSL marker streams."""

import socket
import sys
import time

import pytest

from physioemo.acquisition.markers import (
    LSLMarkers,
    MarkerHub,
    TCPMarkers,
    UDPMarkers,
    parse_marker_specs,
)
from physioemo.exceptions import DeviceError, ParameterError


def _wait(hub, n, timeout=5.0):
    got = []
    deadline = time.monotonic() + timeout
    while len(got) < n and time.monotonic() < deadline:
        got += hub.drain()
        time.sleep(0.01)
    return got


def test_parse_specs():
    assert parse_marker_specs(["tcp:5000", "udp:0", "lsl", "lsl:PsychoPy", "keyboard"]) == [
        ("tcp", 5000), ("udp", 0), ("lsl", None), ("lsl", "PsychoPy"), ("keyboard", None)]
    with pytest.raises(ParameterError, match="unknown marker source 'serial:3'"):
        parse_marker_specs(["serial:3"])
    with pytest.raises(ParameterError, match="port number 0-65535"):
        parse_marker_specs(["udp:70000"])


def test_tcp_lines_split_across_packets():
    hub = MarkerHub()
    tcp = TCPMarkers(hub, 0).start()
    try:
        with socket.create_connection(("127.0.0.1", tcp.port)) as sock:
            before = time.time()
            sock.sendall(b"one\ntw")
            time.sleep(0.05)
            sock.sendall(b"o\n\nthree")  # "three" arrives when the peer closes
        got = _wait(hub, 3)
    finally:
        tcp.stop()
    assert [(m.text, m.origin) for m in got] == [
        ("one", "tcp"), ("two", "tcp"), ("three", "tcp")]
    assert all(before - 0.01 <= m.host_time <= time.time() for m in got)


def test_udp_datagrams():
    hub = MarkerHub()
    udp = UDPMarkers(hub, 0).start()
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.sendto(b"a\nb", ("127.0.0.1", udp.port))
        got = _wait(hub, 2)
    finally:
        udp.stop()
    assert [m.text for m in got] == ["a", "b"]


def test_busy_port_is_a_device_error(caplog):
    hub = MarkerHub()
    tcp = TCPMarkers(hub, 0).start()
    try:
        caplog.clear()
        with pytest.raises(DeviceError, match=f"127.0.0.1:{tcp.port}.*pick another port"):
            TCPMarkers(hub, tcp.port).start()
        assert "listening" not in caplog.text  # never claimed before the bind failed
    finally:
        tcp.stop()


@pytest.mark.parametrize("cls", [TCPMarkers, UDPMarkers])
def test_port_0_logs_the_port_it_got(cls, caplog):
    caplog.set_level("INFO", logger="physioemo")
    lst = cls(MarkerHub(), 0).start()
    try:
        assert lst.port > 0
        kind = cls.origin.upper()
        assert f"listening for {kind} markers on 127.0.0.1:{lst.port}" in caplog.text
    finally:
        lst.stop()


# bytes that are not UTF-8, a NUL, spaces, a CR before the newline, a tab: kept exactly
ODD = [b"\xff\xfe stim", b"a\x00b", b"  padded  ", b"tab\there", "é".encode()]


def test_markers_keep_every_byte_tcp_and_udp():
    hub = MarkerHub()
    tcp, udp = TCPMarkers(hub, 0).start(), UDPMarkers(hub, 0).start()
    try:
        with socket.create_connection(("127.0.0.1", tcp.port)) as sock:
            sock.sendall(b"\r\n".join(ODD) + b"\r\n")
        got = _wait(hub, len(ODD))
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            for raw in ODD:
                sock.sendto(raw, ("127.0.0.1", udp.port))
        got += _wait(hub, len(ODD))
    finally:
        tcp.stop()
        udp.stop()
    assert [m.origin for m in got] == ["tcp"] * 5 + ["udp"] * 5
    for m, raw in zip(got, ODD * 2, strict=True):
        # the exact bytes come back: from raw if not UTF-8, else from the text
        assert (m.raw if m.raw is not None else m.text.encode()) == raw
    assert got[0].text == "\\xff\\xfe stim" and got[0].raw == ODD[0]
    assert got[1].text == "a\x00b" and got[1].raw is None


def test_a_1_mb_marker_and_a_burst_arrive_whole():
    hub = MarkerHub()
    tcp = TCPMarkers(hub, 0).start()
    big = "x" * (1 << 20)
    try:
        with socket.create_connection(("127.0.0.1", tcp.port)) as sock:
            sock.sendall(big.encode() + b"\n" + b"".join(b"m%d\n" % i for i in range(5000)))
            sock.sendall(b"last, without newline")
    finally:
        tcp.stop()  # at once: it reads what is still waiting, the last line included
    got = hub.drain()
    assert [m.text for m in got] == [big, *[f"m{i}" for i in range(5000)],
                                     "last, without newline"]


def test_lsl_marker_stream_times_map_to_host_time():
    import pylsl

    info = pylsl.StreamInfo("physioemo-test-markers", "Markers", 1, 0, "string",
                            "physioemo-test")
    outlet = pylsl.StreamOutlet(info)
    hub = MarkerHub()
    lsl = LSLMarkers(hub, "physioemo-test-markers", timeout_s=10).start()
    try:
        time.sleep(0.5)
        sent_host = time.time()
        outlet.push_sample(["stim-7"], pylsl.local_clock() - 0.2)  # stamped 0.2 s ago
        got = _wait(hub, 1, timeout=10)
    finally:
        lsl.stop()
        del outlet
    assert [(m.text, m.origin) for m in got] == [("stim-7", "lsl")]
    assert got[0].host_time == pytest.approx(sent_host - 0.2, abs=0.05)


def test_missing_lsl_stream():
    with pytest.raises(DeviceError, match="no LSL marker stream named 'nobody-here'"):
        LSLMarkers(MarkerHub(), "nobody-here", timeout_s=0.5).start()


def test_keyboard_keys_in_a_terminal(monkeypatch):
    import os
    import pty
    import sys

    from physioemo.acquisition.markers import KeyboardMarkers

    master, slave = pty.openpty()
    tty_in = os.fdopen(slave, "r")
    monkeypatch.setattr(sys, "stdin", tty_in)
    hub = MarkerHub()
    keys = KeyboardMarkers(hub).start()
    try:
        os.write(master, b"a")
        got = _wait(hub, 1)
        os.write(master, b"q")
        assert keys.quit_requested.wait(5)
    finally:
        keys.stop()
        tty_in.close()
        os.close(master)
    assert [(m.text, m.origin) for m in got] == [("key:a", "key")]
    assert hub.drain() == []  # "q" stops, it is not a marker


def test_keyboard_needs_a_terminal(monkeypatch):
    import io
    import sys

    from physioemo.acquisition.markers import KeyboardMarkers

    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    with pytest.raises(DeviceError, match="need an interactive terminal"):
        KeyboardMarkers(MarkerHub()).start()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc/net/udp is Linux")
def test_udp_datagrams_the_kernel_dropped_are_counted():
    hub = MarkerHub()
    udp = UDPMarkers(hub, 0)
    udp._open()  # bound, but no reader yet: the receive buffer fills up
    n = 20000  # 20 MB: more than any receive buffer
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for i in range(n):
            sock.sendto(b"%05d" % i + b"x" * 1000, ("127.0.0.1", udp.port))
    udp.stop()  # reads what waits, then counts what the kernel dropped
    got = hub.drain()
    assert 0 < len(got) < n  # the buffer did overflow
    assert udp.n_lost == n - len(got)
