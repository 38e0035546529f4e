import csv

import numpy as np
import pyedflib
import pytest
import torch

from physioemo.cli.main import main
from physioemo.datasets.dreamer import EEG_CHANNELS
from physioemo.models import build_model, save_checkpoint


def _write_edf(path, names, sfreq, seconds, seed=0):
    rng = np.random.default_rng(seed)
    n = int(sfreq * seconds)
    sig = 4000 + 20 * rng.standard_normal((len(names), n))
    with pyedflib.EdfWriter(str(path), len(names), file_type=pyedflib.FILETYPE_EDFPLUS) as w:
        w.setSignalHeaders([{"label": name, "dimension": "uV", "sample_frequency": sfreq,
                             "physical_min": 3000.0, "physical_max": 5000.0,
                             "digital_min": -32768, "digital_max": 32767}
                            for name in names])
        w.writeSamples(list(sig))


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    model = build_model("histn", n_channels=14, n_times=128, n_outputs=5, dropout=0.5).eval()
    path = tmp_path_factory.mktemp("ckpt") / "model.pt"
    save_checkpoint(path, model, extra={"ch_names": list(EEG_CHANNELS), "sfreq": 128.0,
                                        "window_samples": 128, "dimension": "valence"})
    return path, model


def test_predict_matches_manual_pipeline(tmp_path, checkpoint, capsys):
    path, model = checkpoint
    edf = tmp_path / "rec.edf"
    names = ["EEG " + c for c in EEG_CHANNELS[::-1]] + ["ECG"]  # shuffled order, extras
    _write_edf(edf, names, 128, 70)
    out = tmp_path / "pred.csv"
    assert main(["predict", "--checkpoint", str(path), "--edf", str(edf), "--out",
                 str(out)]) == 0
    with open(out) as fid:
        rows = list(csv.DictReader(fid))
    assert len(rows) == 70
    proba = np.array([[float(r[f"p_rating{k}"]) for k in range(1, 6)] for r in rows])
    np.testing.assert_allclose(proba.sum(1), 1, atol=1e-5)
    assert [int(r["predicted_rating"]) for r in rows] == list(proba.argmax(1) + 1)
    # independent oracle: pyedflib read, numpy normalisation, plain forward pass
    with pyedflib.EdfReader(str(edf)) as r:
        labels = r.getSignalLabels()
        x = np.stack([r.readSignal(labels.index("EEG " + c)) for c in EEG_CHANNELS])
    base = x[:, :1280]
    z = (x - base.mean(1, keepdims=True)) / base.std(1, keepdims=True)
    z[:, :7680] /= np.abs(z[:, :7680]).max(1, keepdims=True)
    z[:, 7680:] /= np.abs(z[:, 7680:]).max(1, keepdims=True)
    win = np.stack([z[:, i * 128:(i + 1) * 128] for i in range(70)]).astype(np.float32)
    with torch.no_grad():
        expected = torch.softmax(model(torch.from_numpy(win)), 1).numpy()
    np.testing.assert_allclose(proba, expected, atol=2e-5)


def test_predict_resamples(tmp_path, checkpoint, capsys):
    path, _ = checkpoint
    edf = tmp_path / "rec256.edf"
    _write_edf(edf, list(EEG_CHANNELS), 256, 20)
    assert main(["predict", "--checkpoint", str(path), "--edf", str(edf), "--step",
                 "0.5", "--resample"]) == 0
    out = edf.with_suffix(".predictions.csv")
    assert len(out.read_text().splitlines()) == 1 + 39  # (2560 - 128) // 64 + 1
    assert "39 windows" in capsys.readouterr().out


def test_predict_missing_channel_is_one_line(tmp_path, checkpoint, capsys):
    path, _ = checkpoint
    edf = tmp_path / "bad.edf"
    _write_edf(edf, list(EEG_CHANNELS[:-1]) + ["Cz"], 128, 12)
    assert main(["predict", "--checkpoint", str(path), "--edf", str(edf)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "lacks the channel(s) ['AF4']" in err[0]
    assert main(["predict", "--checkpoint", str(tmp_path / "no.pt"), "--edf",
                 str(edf)]) == 1
    assert "checkpoint not found" in capsys.readouterr().err


def _one_error_line(capsys):
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Traceback" not in err[0], err
    return err[0]


@pytest.mark.parametrize("sfreq", [1, 64, 256])
def test_predict_refuses_another_rate_without_resample(tmp_path, checkpoint, capsys, sfreq):
    path, _ = checkpoint
    edf = tmp_path / "rec.edf"
    _write_edf(edf, list(EEG_CHANNELS), sfreq, 20)
    out = tmp_path / "p.csv"
    assert main(["predict", "--checkpoint", str(path), "--edf", str(edf), "--out",
                 str(out)]) == 1
    line = _one_error_line(capsys)
    assert f"sampled at {sfreq} Hz but the model expects 128 Hz" in line
    assert "--resample" in line and not out.exists()


def test_predict_upsampling_on_request_is_logged(tmp_path, checkpoint, caplog):
    path, _ = checkpoint
    edf = tmp_path / "rec64.edf"
    _write_edf(edf, list(EEG_CHANNELS), 64, 20)
    with caplog.at_level("WARNING", logger="physioemo"):
        assert main(["predict", "--checkpoint", str(path), "--edf", str(edf),
                     "--resample", "-q"]) == 0
    assert "upsampling 'rec64.edf' from 64 Hz to 128 Hz" in caplog.text
    assert "nothing above 32 Hz" in caplog.text
    rows = edf.with_suffix(".predictions.csv").read_text().splitlines()
    assert len(rows) == 1 + 20


def test_predict_never_overwrites_an_input_or_a_file(tmp_path, checkpoint, capsys):
    path, _ = checkpoint
    edf = tmp_path / "rec.edf"
    _write_edf(edf, list(EEG_CHANNELS), 128, 12)
    before = {p: p.read_bytes() for p in (edf, path)}
    base = ["predict", "--checkpoint", str(path), "--edf", str(edf)]
    for target in (edf, path, tmp_path / "." / edf.name):
        for force in ([], ["--force"]):
            assert main([*base, "--out", str(target), *force]) == 1
            assert "is also an input of this command" in _one_error_line(capsys)
    (tmp_path / "link.edf").symlink_to(edf)  # another name for the same inode
    assert main([*base, "--out", str(tmp_path / "link.edf"), "--force"]) == 1
    assert "also an input" in _one_error_line(capsys)
    assert {p: p.read_bytes() for p in (edf, path)} == before
    out = tmp_path / "old.csv"
    out.write_text("keep me")
    assert main([*base, "--out", str(out)]) == 1
    assert "already exists" in _one_error_line(capsys) and out.read_text() == "keep me"
    assert main([*base, "--out", str(out), "--force", "-q"]) == 0
    assert out.read_text().startswith("window,start_s")


@pytest.mark.parametrize("where, match", [
    ("dir", "is a folder, where a file is to be written"),
    ("/proc/x.csv", "not writable"),
    ("missing/x.csv", "does not exist"),
])
def test_predict_bad_out_is_refused_before_work(tmp_path, checkpoint, capsys, monkeypatch,
                                                where, match):
    import physioemo.models as models

    path, _ = checkpoint
    edf = tmp_path / "rec.edf"
    _write_edf(edf, list(EEG_CHANNELS), 128, 12)
    (tmp_path / "dir").mkdir()
    monkeypatch.chdir(tmp_path)

    def boom(*a, **k):  # pragma: no cover - must not be reached
        raise AssertionError("the model was loaded before the output was checked")

    monkeypatch.setattr(models, "load_checkpoint", boom)
    assert main(["predict", "--checkpoint", str(path), "--edf", str(edf), "--out", where,
                 "--force"]) == 1
    assert match in _one_error_line(capsys)


def test_predict_force_never_leaves_half_a_file(tmp_path, checkpoint, monkeypatch):
    path, _ = checkpoint
    edf = tmp_path / "rec.edf"
    _write_edf(edf, list(EEG_CHANNELS), 128, 12)
    out = tmp_path / "p.csv"
    out.write_text("the previous predictions\n")
    real = csv.writer

    class Dying:
        def __init__(self, fid):
            self.writer, self.n = real(fid), 0

        def writerow(self, row):
            self.n += 1
            if self.n == 5:
                raise OSError("disk full")
            self.writer.writerow(row)

    monkeypatch.setattr(csv, "writer", Dying)
    with pytest.raises(OSError, match="disk full"):
        main(["predict", "--checkpoint", str(path), "--edf", str(edf), "--out", str(out),
              "--force", "-q"])
    assert out.read_text() == "the previous predictions\n"


def test_predict_uses_the_checkpoints_causal_form(tmp_path, capsys):
    torch.manual_seed(1)
    model = build_model("histn", n_channels=14, n_times=128, n_outputs=5).eval()
    ckpt = tmp_path / "causal.pt"
    save_checkpoint(ckpt, model, extra={"ch_names": list(EEG_CHANNELS), "sfreq": 128.0,
                                        "window_samples": 128, "dimension": "valence",
                                        "normalization": "causal"})
    edf = tmp_path / "rec.edf"
    _write_edf(edf, list(EEG_CHANNELS), 128, 30)
    out = tmp_path / "pred.csv"
    assert main(["predict", "--checkpoint", str(ckpt), "--edf", str(edf), "--out", str(out),
                 "--baseline-start", "2", "--baseline-seconds", "5"]) == 0
    assert "(causal normalisation)" in capsys.readouterr().out
    with open(out) as fid:
        rows = list(csv.DictReader(fid))
    # windows start where the baseline ends (7 s) and never use a later sample's scale
    assert [float(r["start_s"]) for r in rows] == [7.0 + i for i in range(23)]
    with pyedflib.EdfReader(str(edf)) as r:
        x = np.stack([r.readSignal(i) for i in range(14)])
    base = x[:, 256:896]
    z = (x - base.mean(1, keepdims=True)) / base.std(1, keepdims=True)
    z /= np.abs(z[:, 256:896]).max(1, keepdims=True)
    win = np.stack([z[:, 896 + i * 128:896 + (i + 1) * 128] for i in range(23)])
    with torch.no_grad():
        expected = torch.softmax(model(torch.from_numpy(win.astype(np.float32))), 1).numpy()
    proba = np.array([[float(r[f"p_rating{k}"]) for k in range(1, 6)] for r in rows])
    np.testing.assert_allclose(proba, expected, atol=2e-5)


def test_predict_flat_baseline_channel_is_one_line(tmp_path, checkpoint, capsys):
    path, _ = checkpoint
    edf = tmp_path / "flat.edf"
    names = list(EEG_CHANNELS)
    rng = np.random.default_rng(0)
    sig = 4000 + 20 * rng.standard_normal((14, 128 * 20))
    sig[6, :1280] = 4000.0  # O1 flat during the 10-s baseline
    with pyedflib.EdfWriter(str(edf), 14, file_type=pyedflib.FILETYPE_EDFPLUS) as w:
        w.setSignalHeaders([{"label": n, "dimension": "uV", "sample_frequency": 128,
                             "physical_min": 3000.0, "physical_max": 5000.0,
                             "digital_min": -32768, "digital_max": 32767} for n in names])
        w.writeSamples(list(sig))
    assert main(["predict", "--checkpoint", str(path), "--edf", str(edf)]) == 1
    line = _one_error_line(capsys)
    assert "channel O1 of 'flat.edf' is flat in the baseline" in line
    assert "--baseline-start" in line
