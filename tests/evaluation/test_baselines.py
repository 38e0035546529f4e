import itertools
import json

import numpy as np
import pytest
from scipy.signal import periodogram
from sklearn.dummy import DummyClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from torch import nn

from physioemo.dsp import FREQ_BANDS
from physioemo.evaluation.baselines import (
    BASELINES,
    physio_features,
    probe_features,
    run_baselines,
    stratified_expectation,
    subsample,
)
from physioemo.evaluation.protocols import run_protocol
from physioemo.exceptions import DataError, ParameterError
from physioemo.training.trainer import WindowSet


class Tiny(nn.Module):
    """Stand-in classifier (as in test_protocols): the baselines do not depend on it."""

    def __init__(self, n_channels=14, n_outputs=5):
        super().__init__()
        self.lin = nn.Linear(n_channels, n_outputs)
        self.config = {}

    def forward(self, x):
        return self.lin(x.pow(2).mean(-1).log1p())

    def freeze_first_temporal_conv(self, freeze=True):
        pass


def tiny_fn(n_outputs, dropout, graph, n_channels, n_times):
    return Tiny(n_channels, n_outputs)


FAST = {"epochs": 1, "steps_per_epoch": 2, "finetune_epochs": 1, "model_fn": tiny_fn,
        "n_threads": 1, "verbose": False}


def test_stratified_expectation_equals_exhaustive_enumeration():
    # every prediction vector, weighted by its probability, scored by scikit-learn
    prior = np.array([0.5, 0.3, 0.2])
    y = np.array([0, 0, 1, 2, 2])
    f1 = acc = 0.0
    for pred in itertools.product(range(3), repeat=len(y)):
        w = np.prod(prior[list(pred)])
        f1 += w * f1_score(y, pred, average="weighted", labels=[0, 1, 2], zero_division=0)
        acc += w * accuracy_score(y, pred)
    got = stratified_expectation(y, prior)
    assert got["weighted_f1"] == pytest.approx(100 * f1, abs=1e-10)
    assert got["accuracy"] == pytest.approx(100 * acc, abs=1e-10)


def test_stratified_expectation_matches_dummy_classifier_over_seeds():
    rng = np.random.default_rng(0)
    y_train = rng.choice(5, 400, p=[0.4, 0.3, 0.15, 0.1, 0.05])
    y_test = rng.choice(5, 120, p=[0.1, 0.2, 0.3, 0.2, 0.2])
    x_train, x_test = np.zeros((400, 1)), np.zeros((120, 1))
    f1s, accs = [], []
    for seed in range(1000):
        pred = DummyClassifier(strategy="stratified", random_state=seed).fit(
            x_train, y_train).predict(x_test)
        f1s.append(100 * f1_score(y_test, pred, average="weighted", zero_division=0))
        accs.append(100 * accuracy_score(y_test, pred))
    prior = np.bincount(y_train, minlength=5) / 400
    got = stratified_expectation(y_test, prior)
    se_f1, se_acc = np.std(f1s) / np.sqrt(1000), np.std(accs) / np.sqrt(1000)
    assert abs(got["weighted_f1"] - np.mean(f1s)) < 4 * se_f1
    assert abs(got["accuracy"] - np.mean(accs)) < 4 * se_acc


def test_stratified_expectation_rejects_bad_inputs():
    with pytest.raises(ParameterError, match="prior must be"):
        stratified_expectation([0, 1], [0.5, 0.6])
    with pytest.raises(ParameterError, match="y_test must be"):
        stratified_expectation([0, 3], [0.5, 0.5])


def test_probe_features_equal_polyfit():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((6, 3, 128)) + np.linspace(0, 2, 128)
    feats = probe_features(x)
    t = np.arange(128)
    for i in range(6):
        for c in range(3):
            slope, _ = np.polyfit(t, x[i, c], 1)
            assert feats[i, c] == pytest.approx(x[i, c].mean(), abs=1e-12)
            assert feats[i, 3 + c] == pytest.approx(slope, abs=1e-12)


def _windows(rng, n_clips=10, n_times=640, labels=None, scale=0.4):
    labels = rng.integers(0, 5, n_clips) if labels is None else labels
    data = rng.standard_normal((n_clips, 14, n_times))
    data *= (1 + scale * labels)[:, None, None]
    starts = np.arange(0, n_times - 128 + 1, 64)
    return data, labels, starts


def _scipy_de(x):
    f, pxx = periodogram(x, 128.0, window="hann", detrend="constant", axis=-1)
    df = f[1] - f[0]
    power = np.stack([pxx[..., (f >= lo) & (f < hi)].sum(-1) * df
                      for lo, hi in FREQ_BANDS.values()], axis=-1)
    return (0.5 * np.log(2 * np.pi * np.e * power)).reshape(len(x), -1)


def _sk_f1(y, proba, classes):
    scores = np.zeros((len(y), 5))
    scores[:, classes] = proba
    return 100 * f1_score(y, scores.argmax(1), average="weighted")


def test_majority_classic_and_probe_against_independent_oracles():
    rng = np.random.default_rng(2)
    data, labels, starts = _windows(rng)
    train = WindowSet.from_starts(data, labels, starts, rows=np.arange(7))
    test = WindowSet.from_starts(data, labels, starts, rows=np.arange(7, 10))
    out = run_baselines(train, test, seed=5)
    assert list(out) == list(BASELINES)
    # majority: by hand
    counts = np.bincount(train.y, minlength=5)
    order = np.argsort(-counts, kind="stable")
    c1, c2 = order[0], order[1]
    m = out["majority"]["metrics"]
    assert out["majority"]["class"] == c1
    assert m["accuracy"] == pytest.approx(100 * np.mean(test.y == c1))
    assert m["weighted_f1"] == pytest.approx(
        100 * f1_score(test.y, np.full(len(test), c1), average="weighted", zero_division=0))
    assert m["top2_accuracy"] == pytest.approx(100 * np.mean((test.y == c1) | (test.y == c2)))
    assert m["seq2hr"] == pytest.approx(
        100 * (abs(c1 - c2) == 1) * np.mean((test.y == c1) | (test.y == c2)))
    assert m["tri_p"] == pytest.approx(100 * np.mean(np.abs(test.y - c1) <= 1))
    # classic: scipy DE + a scikit-learn pipeline built here
    xtr, xte = train.gather(), test.gather()
    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(
        _scipy_de(xtr), train.y)
    want = _sk_f1(test.y, clf.predict_proba(_scipy_de(xte)), clf.classes_)
    assert out["classic"]["metrics"]["weighted_f1"] == pytest.approx(want, abs=1e-6)
    assert out["classic"]["n_train"] == len(train)
    # probe: means and polyfit slopes + 5-NN
    def mean_slope(x):
        t = np.arange(x.shape[-1])
        slopes = np.array([[np.polyfit(t, w[c], 1)[0] for c in range(14)] for w in x])
        return np.concatenate([x.mean(-1), slopes], 1)
    knn = make_pipeline(StandardScaler(), KNeighborsClassifier(5)).fit(mean_slope(xtr),
                                                                       train.y)
    want = _sk_f1(test.y, knn.predict_proba(mean_slope(xte)), knn.classes_)
    assert out["probe"]["metrics"]["weighted_f1"] == pytest.approx(want, abs=1e-9)
    assert out["physio"] == {"available": False, "reason": pytest.approx(
        out["physio"]["reason"])} and not out["physio"]["available"]
    for name in ("majority", "stratified", "classic", "probe"):
        assert out[name]["seconds"] >= 0


def test_training_windows_are_subsampled_deterministically():
    idx = subsample(1000, 30, seed=1)
    assert idx.shape == (30,) and np.all(np.diff(idx) > 0) and idx.max() < 1000
    np.testing.assert_array_equal(idx, subsample(1000, 30, seed=1))
    assert not np.array_equal(idx, subsample(1000, 30, seed=2))
    np.testing.assert_array_equal(subsample(20, 30, seed=1), np.arange(20))
    # run_baselines fits on exactly that subsample
    rng = np.random.default_rng(3)
    data, labels, starts = _windows(rng)
    train = WindowSet.from_starts(data, labels, starts, rows=np.arange(7))
    test = WindowSet.from_starts(data, labels, starts, rows=np.arange(7, 10))
    out = run_baselines(train, test, seed=1, max_train_windows=20)
    assert out["probe"]["n_train"] == out["classic"]["n_train"] == 20
    sub = train.subset(subsample(len(train), 20, seed=1))
    knn = make_pipeline(StandardScaler(), KNeighborsClassifier(5)).fit(
        probe_features(sub.gather()), sub.y)
    want = _sk_f1(test.y, knn.predict_proba(probe_features(test.gather())), knn.classes_)
    assert out["probe"]["metrics"]["weighted_f1"] == pytest.approx(want, abs=1e-9)


def _hand_hr(peaks, start, context_s=10.0):
    """Heart features by a plain loop: RR intervals with both beats in the context."""
    t = np.asarray(peaks) / 256.0
    centre = start / 128.0 + 0.5
    inside = t[(t >= centre - context_s / 2) & (t <= centre + context_s / 2)]
    rr = np.diff(inside)
    if rr.size < 2:
        return [np.nan] * 3
    return [60 / rr.mean(), 1000 * rr.std(), 1000 * np.sqrt(np.mean(np.diff(rr) ** 2))]


def test_physio_against_hand_heart_rate_and_sklearn():
    rng = np.random.default_rng(4)
    labels = np.array([0, 4, 0, 4, 0, 4, 0, 4, 0, 4])
    data, labels, starts = _windows(rng, labels=labels, n_times=1280)
    peaks = []
    for lab in labels:  # heart rate rises with the class, jittered beats from -8 s on
        rr = 60.0 / (60 + 8 * lab) + rng.normal(0, 0.02, 200)
        t = -8.0 + np.cumsum(rr)
        peaks.append(np.round(t[t < 20] * 256).astype(np.int64))
    train = WindowSet.from_starts(data, labels, starts, rows=np.arange(6))
    test = WindowSet.from_starts(data, labels, starts, rows=np.arange(6, 10))
    feats = physio_features(test.rows, test.starts, peaks)
    hand = np.array([_hand_hr(peaks[r], s) for r, s in zip(test.rows, test.starts,
                                                            strict=True)])
    np.testing.assert_allclose(feats, hand, rtol=1e-9)
    out = run_baselines(train, test, seed=0, r_peaks=peaks)
    assert out["physio"]["available"]
    ftr = np.array([_hand_hr(peaks[r], s) for r, s in zip(train.rows, train.starts,
                                                           strict=True)])
    clf = make_pipeline(SimpleImputer(strategy="median"), StandardScaler(),
                        LogisticRegression(max_iter=1000)).fit(ftr, train.y)
    want = _sk_f1(test.y, clf.predict_proba(hand), clf.classes_)
    assert out["physio"]["metrics"]["weighted_f1"] == pytest.approx(want, abs=1e-6)
    assert want > 90  # heart rate carries the label here, so the oracle itself learns


def _shortcut_data(seed=0, n_subjects=1):
    """Clips whose channel offsets (a per-clip drift) identify them; labels random per clip,
    no band-power effect at all."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 5, size=(n_subjects, 18, 3))
    data = rng.standard_normal((n_subjects, 18, 14, 7680)).astype(np.float32)
    data += 3 * rng.standard_normal((n_subjects, 18, 14, 1)).astype(np.float32)
    return data, labels


def test_planted_shortcut_probe_high_under_sd_near_chance_under_sd_strict():
    data, labels = _shortcut_data()
    sd = run_protocol("sd", data, labels, folds=[0, 5], overrides={"n_val": 50}, **FAST)
    strict = run_protocol("sd-strict", data, labels, **FAST)
    sd_probe = np.mean([r["baselines"]["probe"]["metrics"]["weighted_f1"] for r in sd])
    strict_probe = np.mean([r["baselines"]["probe"]["metrics"]["weighted_f1"]
                            for r in strict])
    assert sd_probe > 95  # the offset names the clip, the clip gives the label
    assert strict_probe < 40  # unseen clips: the offsets say nothing
    # band DE carries nothing here under either split
    sd_classic = np.mean([r["baselines"]["classic"]["metrics"]["weighted_f1"] for r in sd])
    assert sd_classic < 40
    # the same windows as HiSTN: the test block of HiSTN, counted the same way
    assert all(r["baselines"]["probe"]["metrics"]["n_windows"] == r["n_test"]
               for r in sd + strict)


def test_no_baselines_and_the_settings_guard(tmp_path):
    data, labels = _shortcut_data(1)
    out = tmp_path / "run"
    off = run_protocol("sd-strict", data, labels, folds=[0], out_dir=out, baselines=False,
                       **FAST)
    assert "baselines" not in off[0]
    assert json.loads((out / "settings.json").read_text())["baselines"] is None
    with pytest.raises(ParameterError, match="baselines: None -> "):
        run_protocol("sd-strict", data, labels, folds=[0, 1], out_dir=out, **FAST)
    on = run_protocol("sd-strict", data, labels, folds=[0], out_dir=tmp_path / "on", **FAST)
    assert set(on[0]["baselines"]) == set(BASELINES)
    assert not on[0]["baselines"]["physio"]["available"]
    with pytest.raises(ParameterError, match="'physio': False"):
        run_protocol("sd-strict", data, labels, folds=[0], out_dir=tmp_path / "on",
                     ecg=[[np.arange(0, 20000, 256)] * 18], **FAST)


def test_subject_independent_protocol_records_baselines_with_ecg():
    data, labels = _shortcut_data(2, n_subjects=2)
    ecg = [[np.arange(-2560, 17000, 200 + 10 * labels[s, j, 0]) for j in range(18)]
           for s in range(2)]
    recs = run_protocol("no-pretrain", data, labels, subjects=[1], ecg=ecg, **FAST)
    base = recs[0]["baselines"]
    assert base["physio"]["available"]
    assert base["physio"]["metrics"]["n_windows"] == recs[0]["n_test"]
    assert base["physio"]["n_train"] == recs[0]["n_train"]  # fine-tuning windows, < 3000
    with pytest.raises(DataError, match="ecg must hold R peaks"):
        run_protocol("no-pretrain", data, labels, ecg=ecg[:1], **FAST)
