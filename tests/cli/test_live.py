"""Live predictions (`physioemo acquire --model`): channel mapping, refusal, outputs."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from physioemo.acquisition.recorder import write_edf  # noqa: E402
from physioemo.acquisition.replay import EDFSource  # noqa: E402
from physioemo.acquisition.session import Acquisition  # noqa: E402
from physioemo.cli._live import LivePredictor, load_predictor  # noqa: E402
from physioemo.cli.main import main  # noqa: E402
from physioemo.exceptions import DataError  # noqa: E402

DREAMER = ["AF3", "F7", "F3", "FC5", "T7", "P7", "O1", "O2", "P8", "T8", "FC6", "F4",
           "F8", "AF4"]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    from physioemo.models import build_model, save_checkpoint

    torch.manual_seed(0)
    model = build_model("histn")
    path = tmp_path_factory.mktemp("ckpt") / "histn.pt"
    save_checkpoint(path, model, extra={"ch_names": DREAMER, "dimension": "valence"})
    return path


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


def test_maps_channels_by_name(checkpoint):
    names = ["EEG " + c for c in reversed(DREAMER)] + ["ECG"]  # other order and extras
    pred = load_predictor(checkpoint, names, 256.0)
    assert pred.index == [13 - i for i in range(14)]
    assert pred.window_in == 256 and (pred._up, pred._down) == (1, 2)


def test_live_predictions_equal_the_model_on_the_normalised_window(checkpoint, tmp_path):
    from physioemo.models import load_checkpoint

    rng = np.random.default_rng(0)
    data = rng.normal(0, 20, (14, 128 * 10))
    path = tmp_path / "dreamer-like.edf"
    write_edf(path, data, 128.0, DREAMER, physical_min=-500.0, physical_max=500.0)
    model, extra = load_checkpoint(checkpoint)
    pred = LivePredictor(model, extra, DREAMER, 128.0, update_s=0.5, baseline_s=2.0)
    outputs = []

    def record(window):
        outputs.append((window.copy(), pred(window)))
        return outputs[-1][1]

    Acquisition(EDFSource(path, speed=8.0), None, update_s=0.5, notch=None,
                predictor=record).run()
    assert [o for _, o in outputs[:4]] == [
        {"baseline": "0.5/2 s"}, {"baseline": "1.0/2 s"}, {"baseline": "1.5/2 s"},
        outputs[3][1]] and "valence" in outputs[3][1]
    ratings = [o for _, o in outputs if "valence" in o]
    assert len(ratings) >= 3 and all(1 <= o["valence"] <= 5 for o in ratings)
    # oracle: z-score to the baseline windows, divide by the segment's running max |z|
    base = np.concatenate([w for w, o in outputs if "baseline" in o]
                          + [outputs[len([1 for _, o in outputs if "baseline" in o])][0]],
                          axis=1)
    mu, sd = base.mean(1, keepdims=True), base.std(1, keepdims=True)
    peak = np.zeros((14, 1))
    for window, out in outputs:
        if "baseline" in out:
            continue
        z = (window - mu) / sd
        peak = np.maximum(peak, np.abs(z).max(1, keepdims=True))
        with torch.no_grad():
            p = torch.softmax(model(torch.tensor((z / peak)[None], dtype=torch.float32)),
                              -1)[0].numpy()
        assert out == {"valence": int(p.argmax()) + 1, "p": round(float(p.max()), 2)}


def test_missing_channels_message():
    with pytest.raises(DataError, match=r"needs the channel\(s\) \['AF4'\]"):
        LivePredictor(torch.nn.Identity(), {"ch_names": DREAMER}, DREAMER[:-1], 128.0)
