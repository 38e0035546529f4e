"""Fixtures for acquisition tests: LSL kept on loopback, a 10-s synthetic recording."""

import os
import socket
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pytest

# LSL must stay on this machine and be configured before pylsl is first imported.
_LSL_CFG = Path(tempfile.gettempdir()) / f"physioemo-tests-lsl-{os.getpid()}.cfg"
_LSL_CFG.write_text("[ports]\nIPv6 = disable\n[multicast]\nResolveScope = machine\n"
                    "AddressesOverride = {127.0.0.1}\nKnownPeers = {127.0.0.1}\n")
os.environ["LSLAPICFG"] = str(_LSL_CFG)

from physioemo.acquisition.base import Source  # noqa: E402


class TeeSource(Source):
    """Wrap a source and keep every chunk it delivers (the test's ground truth)."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner
        self.chunks = []
        for name in ("ch_names", "sfreq", "units", "physical_min", "physical_max",
                     "line_freq", "rate_factor", "device"):
            if hasattr(inner, name):
                setattr(self, name, getattr(inner, name))

    @property
    def exhausted(self):
        return self.inner.exhausted

    def _start(self):
        self.inner.start()

    def _read(self, max_samples):
        chunk = self.inner.read(max_samples)
        if chunk.n_times:
            self.chunks.append(chunk)
        return chunk.data, chunk.timestamps, chunk.package_num

    def _stop(self):
        self.inner.stop()

    def info(self):
        return self.inner.info()

    def raw(self):
        return (np.concatenate([c.data for c in self.chunks], axis=1),
                np.concatenate([c.timestamps for c in self.chunks]))


@pytest.fixture(scope="session")
def tee_source():
    return TeeSource


def send_tcp(port, text):
    with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
        sent = time.time()
        sock.sendall(text.encode() + b"\n")
    return sent


def send_udp(port, text):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sent = time.time()
        sock.sendto(text.encode(), ("127.0.0.1", port))
    return sent


@pytest.fixture(scope="session")
def synthetic_recording(tmp_path_factory):
    """10 s from BrainFlow's synthetic board -> EDF+, with TCP and UDP markers sent live.

    Returns a dict with the path, the raw samples and timestamps the source delivered,
    the markers sent (text, host time), and every online filter/band-power update.
    """
    from physioemo.acquisition.brainflow_source import BrainFlowSource
    from physioemo.acquisition.markers import MarkerHub, TCPMarkers, UDPMarkers
    from physioemo.acquisition.recorder import Recorder
    from physioemo.acquisition.session import Acquisition

    out = tmp_path_factory.mktemp("rec") / "synthetic.edf"
    source = TeeSource(BrainFlowSource("synthetic"))
    hub = MarkerHub()
    tcp, udp = TCPMarkers(hub, 0), UDPMarkers(hub, 0)
    recorder = Recorder(out, source.ch_names, source.sfreq, physical_min=-2000.0,
                        physical_max=2000.0, metadata={"device": "synthetic"},
                        equipment="physioemo:synthetic")
    updates = []
    sent = []

    def on_update(filtered, features):
        updates.append((filtered.copy(), None if features is None else features.copy()))

    def sender():
        for at, kind, text in ((2.0, "tcp", "stim-tcp"), (5.0, "udp", "stim-udp"),
                               (7.5, "tcp", "end-tcp")):
            while source.n_samples < at * 250:
                time.sleep(0.005)
            port = tcp.port if kind == "tcp" else udp.port
            sent.append((text, send_tcp(port, text) if kind == "tcp" else send_udp(port, text)))

    acq = Acquisition(source, recorder, l_freq=1.0, h_freq=45.0, notch=50.0,
                      update_s=0.25, window_s=1.0, listeners=[tcp, udp], hub=hub,
                      on_update=on_update)
    thread = threading.Thread(target=sender, daemon=True)
    thread.start()
    summary = acq.run(10.0)
    thread.join(timeout=5)
    raw, timestamps = source.raw()
    return {"path": out, "raw": raw, "timestamps": timestamps, "sent": sent,
            "updates": updates, "summary": summary, "acq": acq}
