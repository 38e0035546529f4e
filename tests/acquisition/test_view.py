"""Live views render the acquisition state."""

import logging

import numpy as np
from rich.console import Console

from physioemo.acquisition.view import LogView, render


def _state(**kw):
    state = {"source": "synthetic", "sfreq": 250.0, "achieved_sfreq": 249.9,
             "n_times": 2500, "elapsed_s": 10.0, "dropped": 3, "stalls": 0,
             "ch_names": ["Fz", "Cz"], "channel_state": ["ok", "railed"],
             "line_noise": np.array([1.5, np.nan]), "band_names": ["alpha", "beta"],
             "features": np.array([[1.0, 10.0], [100.0, 1000.0]]), "kind": "power",
             "events": ["    3.0 s  DROP 3 samples"], "prediction": {"valence": 3},
             "file": "rec.edf", "buffered": 0}
    state.update(kw)
    return state


def test_render_shows_channels_quality_bands_and_events():
    console = Console(record=True, width=120)
    console.print(render(_state()))
    text = console.export_text()
    assert "synthetic" in text and "249.90 / 250 Hz" in text and "dropped 3" in text
    fz = next(line for line in text.splitlines() if line.startswith("Fz"))
    cz = next(line for line in text.splitlines() if line.startswith("Cz"))
    assert "ok" in fz and "1.5" in fz and "railed" in cz
    # log10 power scaled to 0..8 blocks: 1 -> 0, 10 -> 3, 100 -> 5, 1000 -> 8
    assert fz.count("█") == 0 + 3 and cz.count("█") == 5 + 8
    assert "DROP 3 samples" in text and "valence=3" in text


def test_render_before_first_window():
    console = Console(record=True, width=120)
    console.print(render(_state(features=None, achieved_sfreq=float("nan"), events=[])))
    assert "-- Hz" in console.export_text()


def test_log_view_logs_bad_channels(caplog):
    view = LogView(interval_s=0.0)
    view.start()
    log = logging.getLogger("physioemo")
    old = log.propagate
    log.propagate = True  # the CLI turns propagation off; caplog listens at the root
    try:
        with caplog.at_level(logging.INFO, logger="physioemo"):
            view.update(_state())
    finally:
        log.propagate = old
    assert "10.0 s recorded" in caplog.text and "Cz=railed" in caplog.text
