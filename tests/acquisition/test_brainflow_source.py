"""BrainFlowSource specifics: reconnection, playback file checks, connection params."""

import time

import numpy as np
import pytest

from physioemo.acquisition.brainflow_source import BrainFlowSource
from physioemo.acquisition.recorder import write_edf
from physioemo.exceptions import DataError, DeviceError, ParameterError


def test_reconnect_keeps_the_sample_counter():
    with BrainFlowSource("synthetic") as src:
        time.sleep(0.2)
        first = src.read()
        assert src.reconnect()
        time.sleep(0.2)
        second = src.read()
    assert first.n_times > 0 and second.first_sample == first.n_times
    assert second.timestamps[0] >= first.timestamps[-1]


def test_playback_is_never_restarted(tmp_path):
    path = tmp_path / "x.edf"
    names = ["Fz", "C3", "Cz", "C4", "Pz", "PO7", "Oz", "PO8", "F5", "F7", "F3", "F1",
             "F2", "F4", "F6", "F8"]
    write_edf(path, np.zeros((16, 250)), 250.0, names, physical_min=-2000.0,
              physical_max=2000.0)
    src = BrainFlowSource("playback", file=path)
    assert src.reconnect() is False


def test_playback_of_an_edf_with_another_rate_or_layout(tmp_path):
    path = tmp_path / "dreamer.edf"
    write_edf(path, np.zeros((14, 256)), 128.0, [f"E{i}" for i in range(14)],
              physical_min=-500.0, physical_max=500.0)
    with pytest.raises(DataError, match="sampled at 128 Hz but device 'synthetic' records "
                                        "at 250 Hz"):
        BrainFlowSource("playback", file=path).start()
    other = tmp_path / "c.edf"
    write_edf(other, np.zeros((14, 500)), 250.0, [f"E{i}" for i in range(14)],
              physical_min=-1.0, physical_max=1.0)
    with pytest.raises(DataError, match="has 14 channels but device 'cyton' has 8"):
        BrainFlowSource("playback", file=other, master="cyton").start()


def test_connection_parameters_checked_before_any_device_access():
    with pytest.raises(ParameterError, match="needs --ip: it is a required"):
        BrainFlowSource("cyton-wifi")
    with pytest.raises(ParameterError, match="speed=2.0 only applies to the playback"):
        BrainFlowSource("synthetic", speed=2.0)
    with pytest.raises(ParameterError, match="master='playback' cannot have recorded"):
        BrainFlowSource("playback", file=__file__, master="playback")
    with pytest.raises(DeviceError, match="no driver"):
        BrainFlowSource("emotiv-epoc")
