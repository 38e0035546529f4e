import numpy as np
import pytest

from physioemo.cli.main import main
from physioemo.datasets import load_dreamer, make_synthetic_dreamer


@pytest.fixture(scope="module")
def small_file(tmp_path_factory):
    return make_synthetic_dreamer(tmp_path_factory.mktemp("info") / "d.mat", n_subjects=3,
                                  n_clips=4, stimulus_seconds=61, seed=2)


def test_info_summary_matches_the_file(small_file, capsys):
    assert main(["info", "--dreamer", str(small_file)]) == 0
    out = capsys.readouterr().out
    d = load_dreamer(small_file)
    r = d.ratings
    assert "subjects      3" in out and "clips         4 per subject" in out
    assert "AF3 F7 F3 FC5 T7 P7 O1 O2 P8 T8 FC6 F4 F8 AF4" in out
    assert "stimulus      61.0-61.0 s" in out
    lines = {ln.split()[0]: ln.split()[1:] for ln in out.splitlines() if ln.strip()}
    for d_i, dim in enumerate(("valence", "arousal", "dominance")):
        counts = [int(v) for v in lines[dim][:5]]
        assert counts == [int((r[..., d_i] == c).sum()) for c in range(1, 6)]
        assert sum(counts) == 12
    for s in range(3):
        missing = [str(c) for c in range(1, 6) if not (r[s, :, 0] == c).any()]
        assert lines[str(s + 1)][0] == ",".join(missing)


def test_info_from_environment(small_file, capsys, monkeypatch):
    monkeypatch.setenv("PHYSIOEMO_DREAMER_PATH", str(small_file))
    assert main(["info"]) == 0
    assert "subjects      3" in capsys.readouterr().out


def test_info_errors_are_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("PHYSIOEMO_DREAMER_PATH", raising=False)
    assert main(["info", "--dreamer", str(tmp_path / "DREAMER.mat")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "not found" in err and "--dreamer PATH" in err and "PHYSIOEMO_DREAMER_PATH" in err
    assert main(["info"]) == 2
    assert "no DREAMER file given" in capsys.readouterr().err
    (tmp_path / "notes.txt").write_text("hello")
    assert main(["info", "--dreamer", str(tmp_path / "notes.txt")]) == 1
    assert "is not a MATLAB file" in capsys.readouterr().err


def test_info_lists_missing_classes(tmp_path, capsys):
    p = make_synthetic_dreamer(tmp_path / "one.mat", n_subjects=1, n_clips=2,
                               stimulus_seconds=61, seed=0)
    assert main(["info", "--dreamer", str(p)]) == 0
    out = capsys.readouterr().out
    r = load_dreamer(p).ratings[0]
    row = [ln for ln in out.splitlines() if ln.split()[:1] == ["1"]][0].split()
    for d_i in range(3):
        used = {str(v) for v in r[:, d_i].tolist()}
        assert set(row[1 + d_i].split(",")) == {str(c) for c in range(1, 6)} - used
    assert np.all(r >= 1)


def test_info_says_which_subjects_evaluate_can_use(tmp_path, capsys):
    path = make_synthetic_dreamer(tmp_path / "nan.mat", n_subjects=3, n_clips=2,
                                  stimulus_seconds=61, seed=1)
    row = np.asarray(load_dreamer(path).subjects[1].eeg_stimulus[1][0], dtype="<f8")
    raw = bytearray(path.read_bytes())
    at = raw.find(row[-50:].tobytes())
    raw[at:at + 8] = np.array([np.inf]).tobytes()
    path.write_bytes(bytes(raw))
    assert main(["info", "--dreamer", str(path)]) == 0
    out = capsys.readouterr().out
    assert "usable by evaluate: 2 of 3 subjects (1 3)" in out
    assert "unusable subject 2: EEG stimulus of subject 2, clip 2 contains 1 NaN or " \
           "infinite sample(s)" in out
