"""Device profiles: every YAML loads and agrees with BrainFlow's own board table."""

import warnings
from pathlib import Path

import pytest

from physioemo.acquisition.profiles import list_profiles, load_profile, profile_dirs
from physioemo.exceptions import DataError, ParameterError

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from brainflow.board_shim import BoardShim

# The DREAMER/Emotiv EPOC channel order, as written in the DREAMER documentation.
DREAMER = ["AF3", "F7", "F3", "FC5", "T7", "P7", "O1", "O2", "P8", "T8", "FC6", "F4",
           "F8", "AF4"]

# Profiles that deliberately rename a board's channels (the board's own names differ).
RENAMED = {"synthetic-epoc"}


def test_all_profiles_present():
    names = [p.name for p in list_profiles()]
    assert names == sorted(["synthetic", "playback", "cyton", "cyton-daisy", "ganglion",
                            "cyton-wifi", "cyton-daisy-wifi", "ganglion-wifi",
                            "emotiv-epoc", "synthetic-epoc"])
    # in a checkout the packaged folder is the repository's devices/ itself
    import physioemo

    repo_devices = Path(physioemo.__file__).resolve().parents[1] / "devices"
    assert profile_dirs() == [repo_devices.resolve()]


@pytest.mark.parametrize("profile", [p for p in list_profiles()
                                     if p.driver == "brainflow" and p.board_id != -3],
                         ids=lambda p: p.name)
def test_profile_matches_brainflow(profile):
    descr = BoardShim.get_board_descr(profile.board_id)
    assert profile.sfreq == descr["sampling_rate"]
    assert profile.n_channels == len(descr["eeg_channels"])
    if "eeg_names" in descr and profile.name not in RENAMED:
        assert list(profile.ch_names) == descr["eeg_names"].split(",")
    assert profile.physical_min < 0 < profile.physical_max


def test_issue_facts():
    facts = {"synthetic": (-1, 16, 250), "cyton": (0, 8, 250), "cyton-daisy": (2, 16, 125),
             "ganglion": (1, 4, 200)}
    for name, (board, n, sfreq) in facts.items():
        p = load_profile(name)
        assert (p.board_id, p.n_channels, p.sfreq) == (board, n, sfreq)
    assert load_profile("cyton").required == ("serial_port",)
    assert load_profile("cyton-wifi").required == ("ip_address",)
    assert load_profile("playback").required == ("file",)


def test_emotiv_epoc_is_the_dreamer_layout():
    p = load_profile("emotiv-epoc")
    assert list(p.ch_names) == DREAMER and p.sfreq == 128.0 and p.driver == "none"


def test_synthetic_epoc_names_the_synthetic_board_as_dreamer():
    p, board = load_profile("synthetic-epoc"), load_profile("synthetic")
    assert list(p.ch_names) == DREAMER + ["Fz", "Cz"]
    assert (p.board_id, p.n_channels, p.sfreq) == (board.board_id, board.n_channels,
                                                   board.sfreq)
    assert (p.physical_min, p.physical_max) == (board.physical_min, board.physical_max)


def test_unknown_and_broken_profiles(tmp_path, monkeypatch):
    with pytest.raises(ParameterError, match="unknown device 'muse'.*synthetic"):
        load_profile("muse")
    (tmp_path / "bad.yaml").write_text("name: bad\nboard_id: 0\nwhatever: 1\n")
    (tmp_path / "synthetic.yaml").write_text(
        "name: synthetic\nboard_id: -1\nsfreq: 250\nch_names: [A, B]\n")
    monkeypatch.setenv("PHYSIOEMO_DEVICES_DIR", str(tmp_path))
    with pytest.raises(DataError, match=r"unknown key\(s\) \['whatever'\]"):
        load_profile("bad")
    assert load_profile("synthetic").ch_names == ("A", "B")  # the override wins
