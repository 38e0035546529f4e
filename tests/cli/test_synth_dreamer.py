import numpy as np
import scipy.io

from physioemo.cli.main import main
from physioemo.datasets import load_dreamer


def test_synth_dreamer_writes_a_loadable_file(tmp_path, capsys):
    out = tmp_path / "sub" / "s.mat"
    code = main(["synth-dreamer", "--out", str(out), "--subjects", "2", "--clips", "3",
                 "--stimulus-seconds", "61", "--seed", "5", "-q"])
    assert code == 0
    assert "wrote" in capsys.readouterr().out
    d = load_dreamer(out)
    assert d.n_subjects == 2 and d.n_clips == 3
    assert d.subjects[1].eeg_stimulus[2].shape == (14, 61 * 128)
    raw = scipy.io.loadmat(out, squeeze_me=True, struct_as_record=False)["DREAMER"]
    assert raw.noOfSubjects == 2 and raw.Version == "synthetic seed=5"
    # the same seed through the Python API gives the same samples
    from physioemo.datasets import make_synthetic_dreamer

    ref = load_dreamer(make_synthetic_dreamer(tmp_path / "r.mat", n_subjects=2, n_clips=3,
                                              stimulus_seconds=61, seed=5))
    np.testing.assert_array_equal(ref.subjects[1].eeg_stimulus[2], d.subjects[1].eeg_stimulus[2])


def test_synth_dreamer_effect_size_reaches_the_generator(tmp_path, capsys):
    from physioemo.datasets import make_synthetic_dreamer

    out = tmp_path / "null.mat"
    assert main(["synth-dreamer", "--out", str(out), "--subjects", "1", "--clips", "2",
                 "--stimulus-seconds", "61", "--effect-size", "0", "-q"]) == 0
    assert "effect size 0" in capsys.readouterr().out
    got = load_dreamer(out).subjects[0].eeg_stimulus
    kw = {"n_subjects": 1, "n_clips": 2, "stimulus_seconds": 61}
    null = load_dreamer(make_synthetic_dreamer(tmp_path / "n.mat", effect_size=0.0, **kw))
    planted = load_dreamer(make_synthetic_dreamer(tmp_path / "p.mat", **kw))
    np.testing.assert_array_equal(got[1], null.subjects[0].eeg_stimulus[1])
    assert not np.array_equal(got[1], planted.subjects[0].eeg_stimulus[1])
    assert main(["synth-dreamer", "--out", str(tmp_path / "y.mat"), "--effect-size",
                 "-1"]) == 2
    assert "effect_size=-1.0 is out of range" in capsys.readouterr().err


def test_synth_dreamer_bad_arguments(tmp_path, capsys):
    code = main(["synth-dreamer", "--out", str(tmp_path / "x.mat"), "--subjects", "0"])
    assert code == 2
    assert "n_subjects=0 is out of range" in capsys.readouterr().err
    assert main(["synth-dreamer"]) == 2  # --out is required


def test_synth_dreamer_checks_out_first(tmp_path, capsys):
    out = tmp_path / "x.mat"
    out.write_text("keep")
    argv = ["synth-dreamer", "--out", str(out), "--subjects", "1", "--clips", "1",
            "--stimulus-seconds", "2"]
    assert main(argv) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "already exists" in err[0] and out.read_text() == "keep"
    assert main([*argv, "--force", "-q"]) == 0 and out.stat().st_size > 1000
    assert main([*argv[:2], str(tmp_path), *argv[3:], "--force"]) == 1
    assert "is a folder" in capsys.readouterr().err
