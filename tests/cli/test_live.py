"""Live predictions (`physioemo acquire --model`): mapping, refusal, record, = offline."""

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from physioemo.acquisition.recorder import write_edf  # noqa: E402
from physioemo.acquisition.replay import EDFSource  # noqa: E402
from physioemo.acquisition.session import Acquisition  # noqa: E402
from physioemo.cli.main import main  # noqa: E402
from physioemo.datasets.preprocessing import normalize_recording  # noqa: E402
from physioemo.exceptions import DataError  # noqa: E402
from physioemo.inference.live import (  # noqa: E402
    LivePredictor,
    load_predictor,
    read_live_predictions,
)

DREAMER = ["AF3", "F7", "F3", "FC5", "T7", "P7", "O1", "O2", "P8", "T8", "FC6", "F4",
           "F8", "AF4"]


def _save(path, normalization, sfreq=128.0, window=128):
    from physioemo.models import build_model, save_checkpoint

    torch.manual_seed(0)
    model = build_model("histn", n_channels=14, n_times=window).eval()
    extra = {"ch_names": DREAMER, "dimension": "valence", "sfreq": sfreq,
             "window_samples": window}
    if normalization is not None:
        extra["normalization"] = normalization
    save_checkpoint(path, model, extra=extra)
    return path


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return _save(tmp_path_factory.mktemp("ckpt") / "histn.pt", "causal")


@pytest.fixture(scope="module")
def checkpoint250(tmp_path_factory):
    """A causal checkpoint at the synthetic board's rate (no resampling anywhere)."""
    return _save(tmp_path_factory.mktemp("ckpt") / "histn250.pt", "causal", 250.0, 250)


def test_refuses_a_headset_without_the_channels(checkpoint, tmp_path, capsys):
    out = tmp_path / "x.edf"
    assert main(["acquire", "--device", "synthetic", "--model", str(checkpoint),
                 "--out", str(out), "--duration", "1", "--no-tui"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    # the synthetic board has F7, F3, F4, F8 but none of the others
    assert "needs the channel(s) ['AF3', 'FC5', 'T7', 'P7', 'O1', 'O2', 'P8', 'T8', " \
           "'FC6', 'AF4']" in err and "emotiv-epoc" in err
    assert not out.exists()


@pytest.mark.parametrize("form", [None, "paper"])
def test_refuses_a_paper_checkpoint_in_one_line(tmp_path, capsys, form):
    # a checkpoint without the field predates the forms: it was trained with "paper"
    ckpt = _save(tmp_path / "paper.pt", form)
    out = tmp_path / "x.edf"
    assert main(["acquire", "--device", "synthetic-epoc", "--model", str(ckpt),
                 "--out", str(out), "--duration", "1", "--no-tui"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Traceback" not in err[0]
    assert "trained with the 'paper' normalisation" in err[0]
    assert "retrain with `physioemo evaluate --normalization causal`" in err[0]
    assert not out.exists()


def test_maps_channels_by_name(checkpoint):
    names = ["EEG " + c for c in reversed(DREAMER)] + ["ECG"]  # other order and extras
    pred = load_predictor(checkpoint, names, 256.0)
    assert pred.index == [13 - i for i in range(14)]
    assert pred.window_in == 256 and (pred._up, pred._down) == (1, 2)


def test_missing_channels_message():
    with pytest.raises(DataError, match=r"needs the channel\(s\) \['AF4'\]"):
        LivePredictor(torch.nn.Identity(), {"ch_names": DREAMER}, DREAMER[:-1], 128.0)


class Spy(torch.nn.Module):
    """Delegates to a model and keeps every input it was given."""

    def __init__(self, model):
        super().__init__()
        self.model, self.inputs = model, []

    def forward(self, x):
        self.inputs.append(x.clone())
        return self.model(x)


def test_streamed_model_inputs_equal_the_offline_causal_ones(checkpoint, tmp_path):
    """Chunk by chunk through the acquisition loop: the model sees the offline windows."""
    from physioemo.acquisition.edf import stored_values
    from physioemo.models import load_checkpoint

    rng = np.random.default_rng(0)
    data = rng.normal(0, 20, (14, 128 * 8)) + rng.uniform(-50, 50, (14, 1))
    path = tmp_path / "dreamer-like.edf"
    write_edf(path, data, 128.0, DREAMER, physical_min=-500.0, physical_max=500.0)
    model, extra = load_checkpoint(checkpoint)
    spy = Spy(model)
    pred = LivePredictor(spy, extra, DREAMER, 128.0, baseline_s=2.0)
    outputs, sizes = [], []

    def record(chunk):
        sizes.append(chunk.shape[1])
        outputs.append(pred(chunk))
        return outputs[-1]

    Acquisition(EDFSource(path, speed=8.0), None, update_s=0.3, notch=None,
                predictor=record).run()
    assert sum(sizes) == data.shape[1] and len(set(sizes)) > 1  # every sample, once
    # the baseline clock counts samples: 2 s of baseline, then one whole window after it
    ends = np.cumsum(sizes)
    for end, out in zip(ends, outputs, strict=True):
        if end < 256 + 128:
            assert out == {"baseline": f"{min(end, 256) / 128:.1f}/2 s"}
        else:
            assert set(out) == {"valence", "p"}
    # oracle: the whole recording normalised offline, the window ending at each call
    stored = stored_values(data, -500.0, 500.0)
    offline = normalize_recording(stored, 0, 256, form="causal")
    expected = [offline[:, e - 128:e] for e in ends if e >= 256 + 128]
    assert len(spy.inputs) == len(expected) >= 10
    for x, e in zip(spy.inputs, expected, strict=True):
        np.testing.assert_array_equal(x[0].numpy(), e.astype(np.float32))
    # random chunk sizes (some longer than a window, some empty), straight into it
    rng = np.random.default_rng(1)
    spy.inputs.clear()
    pred = LivePredictor(spy, extra, DREAMER, 128.0, baseline_s=2.0)
    ends, t = [], 0
    while t < stored.shape[1]:
        size = int(rng.choice([0, 1, 7, 60, 129, 300]))
        pred(stored[:, t:t + size])
        t = min(t + size, stored.shape[1])
        if t >= 384 and size:
            ends.append(t)
    assert len(spy.inputs) == len(ends) >= 5
    for x, e in zip(spy.inputs, ends, strict=True):
        np.testing.assert_array_equal(x[0].numpy(), offline[:, e - 128:e].astype(np.float32))
    # and in 1-sample chunks
    spy.inputs.clear()
    pred = LivePredictor(spy, extra, DREAMER, 128.0, baseline_s=2.0)
    for i in range(400):
        pred(stored[:, i:i + 1])
    assert len(spy.inputs) == 400 - 384 + 1
    for k, x in enumerate(spy.inputs):
        np.testing.assert_array_equal(x[0].numpy(),
                                      offline[:, 256 + k:384 + k].astype(np.float32))


def test_flat_baseline_channel_stops_predictions_not_the_recording(checkpoint, caplog):
    from physioemo.models import load_checkpoint

    model, extra = load_checkpoint(checkpoint)
    pred = LivePredictor(model, extra, DREAMER, 128.0, baseline_s=1.0)
    x = np.random.default_rng(1).normal(0, 10, (14, 300))
    x[4] = 7.0  # T7 disconnected
    with caplog.at_level("ERROR", logger="physioemo"):
        assert "baseline" in pred(x[:, :100])
        assert pred(x[:, 100:]) == {"predictions": "off (flat baseline channel, see the log)"}
    assert "channel T7 of the live recording's baseline is flat" in caplog.text
    assert pred(x) == {"predictions": "off (flat baseline channel, see the log)"}


def test_acquire_writes_live_predictions_that_predict_reproduces(checkpoint250, tmp_path,
                                                                 capsys):
    """Synthetic board -> EDF+ and live CSV; `predict` on the EDF+ gives the same numbers."""
    import csv
    import hashlib

    out = tmp_path / "rec.edf"
    assert main(["acquire", "--device", "synthetic-epoc", "--model", str(checkpoint250),
                 "--out", str(out), "--duration", "4", "--baseline-s", "2", "--no-tui",
                 "-q"]) == 0
    live = out.with_name("rec.live-predictions.csv")
    header, rows = read_live_predictions(live)
    assert header["checkpoint"] == str(checkpoint250.resolve())
    assert header["checkpoint_sha256"] == hashlib.sha256(checkpoint250.read_bytes()).hexdigest()
    assert header["dimension"] == "valence" and header["normalization"] == "causal"
    assert header["complete"] == f"{len(rows)} predictions"
    # about one prediction per update (0.25 s) from 3 s (2-s baseline + 1-s window) to 4 s
    assert 3 <= len(rows) <= 6
    ends = np.array([int(r["end_sample"]) for r in rows])
    assert ends[0] >= 750 and ends[-1] <= 1000 and (np.diff(ends) > 0).all()
    np.testing.assert_allclose([float(r["end_s"]) for r in rows], ends / 250.0, atol=1e-6)
    assert [int(r["start_sample"]) for r in rows] == list(ends - 250)
    side = json.loads(out.with_suffix(".json").read_text())["live_predictions"]
    assert side["file"] == live.name and side["n_predictions"] == len(rows)
    assert side["checkpoint_sha256"] == header["checkpoint_sha256"]
    # offline: every window (step of one sample), then the rows that end where live ones did
    pred_csv = tmp_path / "offline.csv"
    assert main(["predict", "--checkpoint", str(checkpoint250), "--edf", str(out),
                 "--out", str(pred_csv), "--baseline-seconds", "2", "--step", "0.004",
                 "-q"]) == 0
    with open(pred_csv) as fid:
        offline = {int(round(float(r["start_s"]) * 250)): r for r in csv.DictReader(fid)}
    assert min(offline) == 500  # causal: windows start where the baseline ends
    for r in rows:
        o = offline[int(r["start_sample"])]
        for k in range(1, 6):
            assert abs(float(r[f"p_rating{k}"]) - float(o[f"p_rating{k}"])) < 1e-5
        assert r["predicted_rating"] == o["predicted_rating"]


def test_an_existing_live_predictions_file_needs_force(checkpoint250, tmp_path, capsys):
    out = tmp_path / "rec.edf"
    live = tmp_path / "rec.live-predictions.csv"
    live.write_text("earlier predictions\n")
    assert main(["acquire", "--device", "synthetic-epoc", "--model", str(checkpoint250),
                 "--out", str(out), "--duration", "1", "--no-tui"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "live predictions file" in err[0] and "--force" in err[0]
    assert live.read_text() == "earlier predictions\n" and not out.exists()


def test_another_headset_rate_resamples_the_normalised_window(checkpoint):
    from scipy.signal import resample_poly

    from physioemo.models import load_checkpoint

    model, extra = load_checkpoint(checkpoint)
    spy = Spy(model)
    pred = LivePredictor(spy, extra, DREAMER, 256.0, baseline_s=1.0)
    x = np.random.default_rng(2).normal(0, 10, (14, 256 * 3))
    for t in range(0, x.shape[1], 100):
        pred(x[:, t:t + 100])
    offline = normalize_recording(x, 0, 256, form="causal")
    ends = [e for e in range(100, x.shape[1] + 100, 100) if min(e, 768) >= 512]
    ends = [min(e, 768) for e in ends]
    assert len(spy.inputs) == len(ends) == 3
    for got, e in zip(spy.inputs, ends, strict=True):
        want = resample_poly(offline[:, e - 256:e], 1, 2, axis=-1)[:, -128:]
        np.testing.assert_allclose(got[0].numpy(), want.astype(np.float32), rtol=1e-6,
                                   atol=1e-6)
