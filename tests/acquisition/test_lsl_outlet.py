"""LSL outlets carry the same filtered EEG and band powers as the online pipeline."""

import threading
import time

import numpy as np

from physioemo.acquisition.lsl_outlet import LSLOutlet
from physioemo.acquisition.recorder import write_edf
from physioemo.acquisition.replay import EDFSource
from physioemo.acquisition.session import Acquisition


def test_outlets_publish_the_online_results(tmp_path):
    import pylsl

    rng = np.random.default_rng(0)
    path = tmp_path / "src.edf"
    names = ["Fz", "Cz", "Pz", "Oz"]
    write_edf(path, rng.normal(0, 20, (4, 1500)), 250.0, names, physical_min=-500.0,
              physical_max=500.0)
    updates = []
    outlet = LSLOutlet(names, 250.0, name="physioemo-test")
    acq = Acquisition(EDFSource(path, speed=1.5), None, notch=None, update_s=0.2,
                      outlet=outlet,
                      on_update=lambda f, b: updates.append((f.copy(), b)))
    thread = threading.Thread(target=acq.run)
    thread.start()
    eeg = pylsl.resolve_byprop("name", "physioemo-test-eeg", timeout=10)
    bands = pylsl.resolve_byprop("name", "physioemo-test-bands", timeout=10)
    assert eeg and bands
    eeg_in = pylsl.StreamInlet(eeg[0])
    bands_in = pylsl.StreamInlet(bands[0])
    eeg_in.open_stream(timeout=5)
    bands_in.open_stream(timeout=5)
    got_eeg, got_bands = [], []
    while thread.is_alive():
        chunk, _ = eeg_in.pull_chunk(timeout=0.1)
        got_eeg += chunk
        sample, _ = bands_in.pull_chunk(timeout=0.0)
        got_bands += sample
    thread.join()
    time.sleep(0.2)
    got_eeg += eeg_in.pull_chunk(timeout=0.5)[0]
    got_bands += bands_in.pull_chunk(timeout=0.5)[0]
    assert eeg_in.info().channel_count() == 4 and bands_in.info().channel_count() == 20
    filtered = np.concatenate([f for f, _ in updates], axis=1).astype(np.float32)
    got = np.array(got_eeg, dtype=np.float32).T
    assert got.shape[1] >= 250
    # the inlet connected late: what it saw is a contiguous run of the online stream
    n = got.shape[1]
    assert filtered.shape[1] == 1500 and 100 <= n <= 1500
    start = int(np.flatnonzero((filtered == got[:, :1]).all(axis=0))[0])
    np.testing.assert_array_equal(got, filtered[:, start:start + n])
    feats = np.array([b.astype(np.float32).ravel() for _, b in updates if b is not None])
    got_bands = np.array(got_bands, dtype=np.float32)
    assert len(got_bands) >= 3
    k = int(np.flatnonzero((feats == got_bands[0]).all(axis=1))[0])
    np.testing.assert_array_equal(got_bands, feats[k:k + len(got_bands)])
