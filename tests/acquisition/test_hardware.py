"""Real headsets (skipped unless one is attached and named in the environment).

Run with e.g. ``PHYSIOEMO_HARDWARE="cyton:/dev/ttyUSB0" pytest -m hardware``.
"""

import os
import time

import numpy as np
import pytest

from physioemo.acquisition.brainflow_source import BrainFlowSource
from physioemo.acquisition.profiles import load_profile

SPEC = os.environ.get("PHYSIOEMO_HARDWARE", "")

pytestmark = [pytest.mark.hardware,
              pytest.mark.skipif(not SPEC, reason="no headset named in PHYSIOEMO_HARDWARE "
                                                  "(DEVICE:PORT_OR_IP)")]


def test_headset_streams_at_its_rate():
    device, _, where = SPEC.partition(":")
    prof = load_profile(device)
    key = prof.required[0] if prof.required else None
    kwargs = {{"serial_port": "serial_port", "ip_address": "ip_address"}[key]: where} \
        if key else {}
    with BrainFlowSource(prof, **kwargs) as src:
        time.sleep(3.0)
        chunk = src.read()
    assert chunk.data.shape[0] == prof.n_channels
    assert abs(chunk.n_times - 3 * prof.sfreq) < 0.2 * prof.sfreq
    assert np.isfinite(chunk.data).all()
