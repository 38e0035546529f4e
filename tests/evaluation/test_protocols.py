import json

import numpy as np
import pytest
import torch
from torch import nn

from physioemo.evaluation.protocols import derive_seed, run_protocol, scale_schedule
from physioemo.exceptions import DataError, ParameterError


class Tiny(nn.Module):
    """Stand-in classifier (log-power and mean of 4 learned filters)."""

    def __init__(self, n_channels=14, n_outputs=5, dropout=0.0):
        super().__init__()
        self.conv = nn.Conv1d(n_channels, 4, 5, padding=2, bias=False)
        self.lin = nn.Linear(8, n_outputs)
        self.config = {}

    def forward(self, x):
        h = self.conv(x)
        return self.lin(torch.cat([h.pow(2).mean(-1).log1p(), h.mean(-1)], 1))

    def freeze_first_temporal_conv(self, freeze=True):
        self.conv.weight.requires_grad_(not freeze)


def tiny_fn(n_outputs, dropout, graph, n_channels, n_times):
    return Tiny(n_channels, n_outputs, dropout)


@pytest.fixture(scope="module")
def tiny_data():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 5, size=(3, 18, 3))
    data = rng.standard_normal((3, 18, 14, 7680)).astype(np.float32)
    data *= (1 + 0.3 * labels[..., 0])[..., None, None].astype(np.float32)
    return data, labels


FAST = {"epochs": 1, "steps_per_epoch": 2, "finetune_epochs": 1, "model_fn": tiny_fn,
        "n_threads": 1, "verbose": False}


def test_scale_schedule_and_seeds():
    assert scale_schedule({0: 1e-3, 30: 5e-4}, 50, 5) == {0: 1e-3, 3: 5e-4}
    # one epoch runs at the initial rate (50 / 100 epochs rounds to 0, which used to win)
    assert scale_schedule({0: 1e-2, 50: 2e-3}, 100, 1) == {0: 1e-2, 1: 2e-3}
    assert scale_schedule({0: 1e-3, 200: 2e-4, 350: 1e-4}, 400, 1) == {0: 1e-3, 1: 2e-4}
    assert scale_schedule({0: 1e-3, 200: 2e-4, 350: 1e-4}, 400, 8) == {0: 1e-3, 4: 2e-4,
                                                                        7: 1e-4}
    assert derive_seed(0, 1, 2) == derive_seed(0, 1, 2) != derive_seed(0, 2, 1)


def test_sd_records_and_resume(tiny_data, tmp_path):
    data, labels = tiny_data
    out = tmp_path / "run"
    recs = run_protocol("sd", data, labels, subjects=[1], folds=[0, 1], out_dir=out, **FAST)
    assert [(r["subject"], r["fold"]) for r in recs] == [(2, 0), (2, 1)]
    r = recs[0]
    assert r["n_train"] == 18 * (7553 - 768 - 768)  # starts touching blocks 0 and 9 removed
    assert r["n_val"] == 2000 and r["n_test"] == 1000
    assert np.asarray(r["confusion"]).sum() == 1000
    assert set(r["metrics"]) >= {"weighted_f1", "accuracy", "top2_accuracy", "tri_p", "seq2hr"}
    lines = (out / "results.jsonl").read_text().splitlines()
    assert len(lines) == 2
    # resume: finished folds are skipped, new ones appended, old lines untouched
    again = run_protocol("sd", data, labels, subjects=[1], folds=[0, 1], out_dir=out, **FAST)
    assert (out / "results.jsonl").read_text().splitlines() == lines
    assert again == recs
    with pytest.raises(ParameterError, match=r"other settings \(smoothing: 'gaussian' -> "):
        run_protocol("sd", data, labels, subjects=[1], folds=[0, 1], out_dir=out,
                     smoothing="onehot", **FAST)


def test_subject_dependent_protocols_run_on_a_one_subject_file(tiny_data):
    # a user's file may hold one subject; only the subject-independent protocols need more
    data, labels = tiny_data
    one = run_protocol("sd", data[1:2], labels[1:2], folds=[0], subject_numbers=[2], **FAST)
    three = run_protocol("sd", data, labels, subjects=[1], folds=[0], **FAST)
    assert one[0]["subject"] == three[0]["subject"] == 2
    # seeds derive from the subject number: the same subject gives the same result
    assert one[0]["fold_seed"] == three[0]["fold_seed"]
    assert one[0]["metrics"] == three[0]["metrics"]
    assert one[0]["confusion"] == three[0]["confusion"]


def test_resume_after_partial_run_matches_full_run(tiny_data, tmp_path):
    data, labels = tiny_data
    kw = dict(subjects=[0], **FAST)
    full = run_protocol("sd", data, labels, folds=[0, 1, 2], out_dir=tmp_path / "a", **kw)
    # a "crashed" run: fold 0 finished, then a torn line
    b = tmp_path / "b"
    run_protocol("sd", data, labels, folds=[0], out_dir=b, **kw)
    with open(b / "results.jsonl", "a") as fid:
        fid.write('{"subject": 1, "fo')
    resumed = run_protocol("sd", data, labels, folds=[0, 1, 2], out_dir=b, **kw)
    assert [r["fold"] for r in resumed] == [0, 1, 2]
    assert [r["metrics"] for r in resumed] == [r["metrics"] for r in full]
    assert [r["curve"] for r in resumed] == [r["curve"] for r in full]


def test_every_fold_starts_from_the_same_weights(tiny_data, monkeypatch):
    from physioemo.training import trainer as trainer_mod

    seen = []
    fit = trainer_mod.Trainer.fit

    def spy(self, train, val=None):
        seen.append({k: v.clone() for k, v in self.model.state_dict().items()})
        return fit(self, train, val)

    monkeypatch.setattr(trainer_mod.Trainer, "fit", spy)
    data, labels = tiny_data
    run_protocol("sd", data, labels, subjects=[0, 1], folds=[0, 1, 2], **FAST)
    assert len(seen) == 6
    for i in (1, 2):
        assert all(torch.equal(seen[0][k], seen[i][k]) for k in seen[0])
        assert all(torch.equal(seen[3][k], seen[3 + i][k]) for k in seen[3])
    # another subject starts elsewhere (its own derived seed)
    assert not torch.equal(seen[0]["conv.weight"], seen[3]["conv.weight"])


def test_sd_strict_holds_out_whole_clips(tiny_data):
    data, labels = tiny_data
    recs = run_protocol("sd-strict", data, labels, subjects=[0], **FAST)
    assert len(recs) == 6
    tests = []
    for r in recs:
        assert not set(r["train_clips"]) & set(r["test_clips"])
        assert not set(r["val_clips"]) & set(r["test_clips"])
        assert r["n_test"] == 60 * len(r["test_clips"])  # non-overlapping 1-s windows
        tests += r["test_clips"]
    assert sorted(tests) == list(range(18))


@pytest.mark.parametrize("protocol", ["reston1", "reston1-nc", "1on1", "no-pretrain"])
def test_subject_independent_protocols(tiny_data, protocol):
    data, labels = tiny_data
    recs = run_protocol(protocol, data, labels, subjects=[0], **FAST)
    (r,) = recs
    assert r["subject"] == 1 and r["fold"] == 0
    assert r["n_train"] == 18 * 37 and r["n_test"] == 18 * 50  # §5.2: 666 and 900
    assert len(r["curve"]["train_loss"]) == 1
    assert ("pretrain_curve" in r) == (protocol != "no-pretrain")
    if protocol == "1on1":
        assert r["pretrain_subject"] == 3


@pytest.mark.slow
def test_results_do_not_depend_on_n_jobs(tiny_data, tmp_path):
    data, labels = tiny_data
    kw = dict(subjects=[0, 2], folds=[4], **FAST)
    one = run_protocol("sd", data, labels, n_jobs=1, out_dir=tmp_path / "1", **kw)
    two = run_protocol("sd", data, labels, n_jobs=2, out_dir=tmp_path / "2", **kw)
    for a, b in zip(one, two, strict=True):
        assert a["metrics"] == b["metrics"] and a["curve"] == b["curve"]
        assert a["confusion"] == b["confusion"]
        assert "native_kernel" not in a  # one dropout stream on every path (issue 14)
        # the baselines are seeded from the fold's seed too
        assert ({k: v.get("metrics") for k, v in a["baselines"].items()}
                == {k: v.get("metrics") for k, v in b["baselines"].items()})
    lines = [json.loads(x) for x in (tmp_path / "2" / "results.jsonl").read_text().splitlines()]
    assert sorted(x["subject"] for x in lines) == [1, 3]


def test_work_units():
    from physioemo.evaluation.protocols import RECIPES, _work_units

    sd = RECIPES["sd"]
    assert _work_units("sd", sd, [0, 2], None, 1) == [(0, None), (2, None)]
    assert _work_units("sd", sd, [4], None, 2) == [(4, [f]) for f in range(10)]
    assert _work_units("sd", sd, [0, 1], [3, 1], 3) == [(0, [3]), (0, [1]), (1, [3]),
                                                        (1, [1])]
    strict = RECIPES["sd-strict"]
    assert len(_work_units("sd-strict", strict, [0], None, 2)) == strict["n_splits"]
    assert _work_units("reston1", RECIPES["reston1"], [0, 1], None, 2) == [(0, None),
                                                                         (1, None)]


@pytest.mark.slow
def test_one_subjects_folds_shared_by_jobs(tiny_data, tmp_path):
    # sd with n_jobs > 1 also spreads a subject's folds over the processes: same records,
    # and the checkpoint is still the one of the subject's last fold
    from physioemo.models import load_checkpoint

    data, labels = tiny_data
    kw = dict(subjects=[1], folds=[3, 1], **{**FAST, "model_fn": None})  # checkpoints: HiSTN
    one = run_protocol("sd", data, labels, n_jobs=1, out_dir=tmp_path / "1", **kw)
    two = run_protocol("sd", data, labels, n_jobs=2, out_dir=tmp_path / "2", **kw)
    assert [r["fold"] for r in two] == [1, 3]
    for a, b in zip(one, two, strict=True):
        assert a["metrics"] == b["metrics"] and a["curve"] == b["curve"]
        assert a["confusion"] == b["confusion"]
    ckpts = [load_checkpoint(tmp_path / d / "checkpoints" / "subject02.pt")
             for d in ("1", "2")]
    assert ckpts[0][1]["fold"] == ckpts[1][1]["fold"] == 1  # the last fold run, as given
    # the weights agree to float32 rounding: bit-identical when the test runs alone, but
    # after other tests have run in this process they differ in the last bits (seen since
    # the Numba kernels; records above stay identical)
    for k, v in ckpts[0][0].state_dict().items():
        torch.testing.assert_close(v, ckpts[1][0].state_dict()[k], rtol=1e-5, atol=1e-6,
                                   msg=k)


def test_bad_inputs(tiny_data):
    data, labels = tiny_data
    with pytest.raises(ParameterError, match="name='loso' is not a valid option"):
        run_protocol("loso", data, labels)
    with pytest.raises(DataError, match="labels must have shape"):
        run_protocol("sd", data, labels[:, :, :2])
    with pytest.raises(ParameterError, match=r"subjects \[5\] do not exist"):
        run_protocol("sd", data, labels, subjects=[5], **FAST)
    with pytest.raises(DataError, match="needs at least 2 subjects"):
        run_protocol("reston1", data[:1], labels[:1], **FAST)


# -- Gaussian smoothing raises Seq2HR (sd, the paper's claim) -------------------------------
# Quick recipe (not the paper's): batch 64, lr 3e-3, 20 epochs x 20 steps, fold 2 only.
# Under `sd` the windows of a test block come from clips seen in training, and the
# generator's per-clip drift identifies the clip: a 5-NN on per-window channel means and
# slopes scores ~98 % weighted F1 here with or without the planted effect (see
# test_sd_split_lets_a_drift_probe_recognise_the_clip), so this test's F1 is no learning
# check (that is test_sd_strict_histn_learns_the_planted_effect_beyond_baselines). It
# checks the paper's Seq2HR claim: with Gaussian targets the two top classes are neighbours.
QUICK = {"batch_size": 64, "lr": {0: 3e-3}, "n_val": 300, "n_test": 300}
# Measured with this recipe, Keras initialisation bounds and Adam eps 1e-7, native kernel,
# 2 threads, mean over seeds 0-2 and subjects 1-2: Seq2HR gaussian 59.8 vs one-hot 48.1
# (margin 11.8; weighted F1 43.4 / 57.5). Before those changes (per seed):
# Seq2HR gaussian 66.7 / 77.8 /
# 82.0 vs one-hot 60.7 / 60.3 / 52.3 (margins 6.0 / 17.5 / 29.7, mean 17.7). PyTorch layers
# only (PHYSIOEMO_NATIVE=0; other dropout draws): Seq2HR 71.0 / 82.7 / 71.8 vs 54.7 / 53.7 /
# 52.2 (margins 16.3 / 29.0 / 19.6, mean 21.6). One seed's margin swings with the dropout
# draws, so the test asserts the mean over the three seeds.
SEQ2HR_MARGIN = 10.0


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    from physioemo.datasets import load_preprocessed, make_synthetic_dreamer

    d = tmp_path_factory.mktemp("syn")
    make_synthetic_dreamer(d / "dreamer.mat", n_subjects=2, stimulus_seconds=62.0, seed=0)
    return load_preprocessed(d / "dreamer.mat", cache_dir=d / "cache")


@pytest.mark.slow
def test_sd_gaussian_smoothing_raises_seq2hr(synthetic):
    data, labels = synthetic
    out = {}
    for smoothing in ("gaussian", "onehot"):
        recs = [r for seed in (0, 1, 2)
                for r in run_protocol("sd", data, labels, epochs=20, steps_per_epoch=20,
                                      folds=[2], overrides=QUICK, smoothing=smoothing,
                                      n_threads=2, verbose=False, save_checkpoints=False,
                                      seed=seed)]
        assert len(recs) == 6  # 2 subjects x 3 seeds
        out[smoothing] = {m: np.mean([r["metrics"][m] for r in recs])
                          for m in ("weighted_f1", "seq2hr")}
    print("sd Seq2HR check:", out)
    assert out["gaussian"]["seq2hr"] > out["onehot"]["seq2hr"] + SEQ2HR_MARGIN


def test_sd_split_lets_a_drift_probe_recognise_the_clip(synthetic):
    """The shortcut behind `sd`: features without band power score near 100 % there."""
    from sklearn.neighbors import KNeighborsClassifier

    from physioemo.evaluation.baselines import probe_features
    from physioemo.evaluation.protocols import derive_seed
    from physioemo.evaluation.splits import ClipKFold, TemporalBlockSplit, window_starts

    data, labels = synthetic

    def windows(s, clips, starts):
        X = np.stack([data[s, c, :, t:t + 128] for c in clips for t in starts])
        return probe_features(X), np.repeat(labels[s, clips, 0], len(starts))

    sd, strict, strict_chance = [], [], []
    for s in range(2):
        clips = np.arange(18)
        tr, _, te = TemporalBlockSplit(10, 128).fold(2, data.shape[-1])
        Xtr, ytr = windows(s, clips, tr[::16])
        Xte, yte = windows(s, clips, te[::128])
        sd.append(_weighted_f1(yte, KNeighborsClassifier(5).fit(Xtr, ytr).predict(Xte)))
        nonover = window_starts(data.shape[-1])
        # the sd-strict folds run_protocol uses for this subject (ClipKFold's seed)
        for tr_c, va_c, te_c in ClipKFold(6, True, derive_seed(0, s + 1, 1)).split_clips(18):
            Xtr, ytr = windows(s, np.concatenate([tr_c, va_c]), nonover)
            Xte, yte = windows(s, te_c, nonover)
            pred = KNeighborsClassifier(5).fit(Xtr, ytr).predict(Xte)
            strict.append(_weighted_f1(yte, pred))
            strict_chance.append(_chance_f1(yte, pred))
    # measured: sd fold 2 100.0 / 100.0 (valence, subjects 1-2); sd-strict 28.4 against its
    # permutation chance level 24.4 (mean over the 12 folds)
    assert min(sd) > 90
    assert np.mean(strict) < np.mean(strict_chance) + CONTROL_SLACK


# -- honest learning check: sd-strict (whole clips held out), planted effect vs none --------
# The generator's per-clip drift identifies a clip, so under `sd` (within-trial) a model can
# score by recognising the clip (the probe below scores ~97 % there, with or without the
# planted effect). Under `sd-strict` no test clip is seen in training, so only the planted
# band-power effect can carry the label. One subject with 36 clips (24 train, 6 validation,
# 6 test per fold; all 6 folds, so every clip is tested once), high-passed at 2 Hz: without
# the filter HiSTN fits the training clips' drift (training loss falls while the validation
# loss rises from the first epochs) and stays at chance within this budget.
STRICT_FILE = {"n_subjects": 1, "n_clips": 36, "stimulus_seconds": 62.0, "seed": 0}
STRICT_RUN = {"epochs": 25, "steps_per_epoch": 40, "overrides": {"batch_size": 64,
                                                                 "lr": {0: 3e-3}},
              "n_threads": 2, "verbose": False, "save_checkpoints": False}
STRICT_SEEDS = (0, 1)
# Measured (means over the 2 seeds x 6 folds, weighted F1 %, valence), with the Numba
# kernels (dropout from torch's generator, issue 14):
#   planted effect: HiSTN 51.8, HiSTN's permutation chance 29.3
#   no effect:      HiSTN 7.8, its chance 9.8
# With the former C kernels' dropout draws: planted effect HiSTN 51.6 (seeds 48.2 / 55.1),
# chance 29.5; no effect HiSTN 9.6, chance 13.1.
#   run_protocol's own baselines on the same folds (record["baselines"], with the ECG):
#   planted effect: stratified 25.6, classic (band DE + logistic regression) 46.9, physio
#                   17.4, probe 23.7; no effect: stratified 25.6, classic 24.5, physio 12.3,
#                   probe 23.6 (valence: the heart rate follows arousal only)
#   planted effect without the 2-Hz high-pass (paper preprocessing): HiSTN 14.9 (15.6 /
#                   14.1) against its chance 16.1 -- it does not learn the effect here.
# About 45 s per test on an idle 2-core machine (much longer when other jobs share it).
STRICT_MARGIN = 15.0  # F1 points above the best baseline and above chance
CONTROL_SLACK = 8.0  # F1 points a score may exceed its chance level on the control


@pytest.fixture(scope="module")
def strict_data(tmp_path_factory):
    from physioemo.datasets import load_preprocessed, make_synthetic_dreamer
    from physioemo.datasets.cache import load_r_peaks

    out = {}
    for effect in (None, 0.0):  # None: the default planted effect
        d = tmp_path_factory.mktemp("strict")
        kw = {} if effect is None else {"effect_size": effect}
        make_synthetic_dreamer(d / "dreamer.mat", **STRICT_FILE, **kw)
        data, labels = load_preprocessed(d / "dreamer.mat", cache_dir=d / "cache", l_freq=2.0)
        out[effect] = data, labels, load_r_peaks(d / "dreamer.mat", cache_dir=d / "cache")
    return out


def _weighted_f1(y, pred):
    from sklearn.metrics import f1_score

    return 100 * f1_score(y, pred, average="weighted", labels=np.arange(5), zero_division=0)


def _chance_f1(y, pred, n_perm=100, seed=0):
    """Mean weighted F1 of ``pred`` against permuted labels (predictions independent of y).

    Keeps the class distribution of the test windows and of the predictions, so it is the
    chance level of this predictor on this test set (a constant or a skewed predictor on a
    natural class distribution scores far from 20 %).
    """
    rng = np.random.default_rng(seed)
    return float(np.mean([_weighted_f1(rng.permutation(y), pred) for _ in range(n_perm)]))


def _from_confusion(cm):
    cm = np.asarray(cm)
    y = np.repeat(np.arange(len(cm)), cm.sum(1))
    pred = np.concatenate([np.repeat(np.arange(len(cm)), row) for row in cm])
    return y, pred


FITTED = ("classic", "physio", "probe")  # baselines with a classifier behind them


def _strict_scores(data, labels, ecg, seed):
    """HiSTN's weighted F1 and its chance level, and every baseline's, on every fold.

    The baselines are the ones ``run_protocol`` stores beside HiSTN (``record["baselines"]``,
    fitted on the same fold's windows); the test checks their test windows are HiSTN's.
    """
    from physioemo.evaluation.splits import window_starts

    recs = run_protocol("sd-strict", data, labels, seed=seed, ecg=ecg, **STRICT_RUN)
    n_windows = len(window_starts(data.shape[-1]))  # the test windows: non-overlapping
    out = {k: [] for k in ("histn", "histn_chance", "majority", "stratified", *FITTED)}
    for r in recs:
        y_cm, pred = _from_confusion(r["confusion"])
        yte = np.repeat(labels[0, r["test_clips"], 0], n_windows)
        assert np.array_equal(np.sort(y_cm), np.sort(yte))  # the same test windows
        out["histn"].append(r["metrics"]["weighted_f1"])
        out["histn_chance"].append(_chance_f1(y_cm, pred))
        base = r["baselines"]
        assert base["physio"]["available"], base["physio"]
        for name in ("majority", "stratified", *FITTED):
            assert base[name]["metrics"].get("n_windows", len(yte)) == len(yte)
            out[name].append(base[name]["metrics"]["weighted_f1"])
    return out


def _mean_over_seeds(data, labels, ecg):
    runs = [_strict_scores(data, labels, ecg, seed) for seed in STRICT_SEEDS]
    return {k: float(np.mean([v for run in runs for v in run[k]])) for k in runs[0]}


@pytest.mark.slow
def test_sd_strict_histn_learns_the_planted_effect_beyond_baselines(strict_data):
    m = _mean_over_seeds(*strict_data[None])
    print("sd-strict, planted effect:", {k: round(v, 1) for k, v in m.items()})
    assert m["histn"] > max(m["majority"], m["stratified"], m["probe"]) + STRICT_MARGIN, m
    assert m["histn"] > m["histn_chance"] + STRICT_MARGIN, m


@pytest.mark.slow
def test_sd_strict_negative_control_stays_at_chance(strict_data):
    m = _mean_over_seeds(*strict_data[0.0])
    print("sd-strict, no effect:", {k: round(v, 1) for k, v in m.items()})
    assert m["histn"] < m["histn_chance"] + CONTROL_SLACK, m
    # a classifier that learned nothing scores at most about as well as guessing with the
    # training class frequencies (the exact expectation, "stratified"), usually less
    for name in FITTED:
        assert m[name] < m["stratified"] + CONTROL_SLACK, (name, m)



# -- lr / dropout / batch_size keywords ------------------------------------------------------
def test_scale_lr_keeps_the_schedule_shape():
    from physioemo.evaluation.protocols import scale_lr

    assert scale_lr({0: 1e-3, 30: 5e-4}, 2e-3) == {0: 2e-3, 30: 1e-3}
    assert scale_lr({0: 1e-2, 50: 2e-3}, 1e-3) == pytest.approx({0: 1e-3, 50: 2e-4})
    assert scale_lr({0: 1e-3, 30: 5e-4}, 1e-3) == {0: 1e-3, 30: 5e-4}  # exact identity
    assert scale_lr(3e-3, 1e-4) == 1e-4


class Spy:
    """Records the dropout given to model_fn, training batch sizes and Adam's rate per step."""

    def __init__(self, monkeypatch):
        self.reset()
        spy = self

        class SpyTiny(Tiny):
            def forward(self, x):
                if self.training:
                    spy.batches.append(x.shape[0])
                return super().forward(x)

        class SpyAdam(torch.optim.Adam):
            def step(self, closure=None):
                spy.lrs.append(self.param_groups[0]["lr"])
                return super().step(closure)

        def model_fn(n_outputs, dropout, graph, n_channels, n_times):
            spy.dropouts.append(dropout)
            return SpyTiny(n_channels, n_outputs, dropout)

        self.model_fn = model_fn
        monkeypatch.setattr(torch.optim, "Adam", SpyAdam)

    def reset(self):
        self.dropouts, self.batches, self.lrs = [], [], []


def test_hyperparameters_reach_model_and_optimizer(tiny_data, tmp_path, monkeypatch):
    data, labels = tiny_data
    spy = Spy(monkeypatch)
    kw = {**FAST, "model_fn": spy.model_fn, "subjects": [0]}
    # sd, 2 epochs: the recipe's milestone 30 of 50 moves to epoch round(1.2) = 1
    (rec,) = run_protocol("sd", data, labels, folds=[0], lr=4e-3, dropout=0.3,
                          batch_size=16, out_dir=tmp_path / "sd", **{**kw, "epochs": 2})
    assert spy.dropouts == [0.3]
    assert spy.batches == [16] * 4  # 2 epochs x 2 steps
    assert spy.lrs == pytest.approx([4e-3, 4e-3, 2e-3, 2e-3])
    assert rec["curve"]["lr"] == pytest.approx([4e-3, 2e-3])
    assert rec["hyperparams"] == {"dropout": 0.3, "batch_size": 16,
                                  "lr": {"0": 4e-3, "1": pytest.approx(2e-3)}}
    settings = json.loads((tmp_path / "sd" / "settings.json").read_text())
    assert (settings["lr"], settings["dropout"], settings["batch_size"]) == (4e-3, 0.3, 16)

    # reston1: lr/batch_size act on pretraining (recipe starts at 1e-2); fine-tuning keeps
    # batch 100 shuffled over 666 windows (6 x 100 + 66) at 1e-3
    spy.reset()
    (rec,) = run_protocol("reston1", data, labels, lr=5e-3, dropout=0.1, batch_size=8, **kw)
    assert spy.dropouts == [0.1]
    assert spy.batches == [8, 8] + [100] * 6 + [66]
    assert spy.lrs == pytest.approx([5e-3] * 2 + [1e-3] * 7)
    # the recipe's 50-of-100 milestone (2e-3, scaled by 5e-3 / 1e-2) moves to epoch 1
    assert rec["hyperparams"] == {"dropout": 0.1, "batch_size": 8,
                                  "lr": {"0": 5e-3, "1": pytest.approx(1e-3)},
                                  "finetune_batch_size": 100, "finetune_lr": {"0": 1e-3}}

    # no-pretrain: they act on its only stage (666 windows in batches of 300)
    spy.reset()
    (rec,) = run_protocol("no-pretrain", data, labels, lr=2e-3, batch_size=300, **kw)
    assert spy.dropouts == [0.2]  # the recipe's
    assert spy.batches == [300, 300, 66]
    assert spy.lrs == pytest.approx([2e-3] * 3)
    assert rec["hyperparams"] == {"dropout": 0.2, "batch_size": 300, "lr": {"0": 2e-3}}


def test_histn_is_built_with_the_given_dropout(tiny_data, monkeypatch):
    from physioemo.models.histn import HiSTN
    from physioemo.training import trainer as trainer_mod

    models = []
    fit = trainer_mod.Trainer.fit

    def spy(self, train, val=None):
        models.append(self.model)
        return fit(self, train, val)

    monkeypatch.setattr(trainer_mod.Trainer, "fit", spy)
    data, labels = tiny_data
    fast = {k: v for k, v in FAST.items() if k != "model_fn"}
    run_protocol("no-pretrain", data, labels, subjects=[0], dropout=0.35, batch_size=333,
                 save_checkpoints=False, **fast)
    (model,) = models
    assert isinstance(model, HiSTN) and model.dropout == 0.35


def test_recipe_values_reproduce_the_recipe_and_another_lr_does_not(tiny_data):
    data, labels = tiny_data
    kw = {**FAST, "subjects": [0], "folds": [0], "epochs": 2}
    (base,) = run_protocol("sd", data, labels, **kw)
    (same,) = run_protocol("sd", data, labels, lr=1e-3, dropout=0.5, batch_size=256, **kw)
    assert same["metrics"] == base["metrics"] and same["curve"] == base["curve"]
    assert same["confusion"] == base["confusion"]
    assert base["hyperparams"] == {"dropout": 0.5, "batch_size": 256,
                                   "lr": {"0": 1e-3, "1": 5e-4}}
    (other,) = run_protocol("sd", data, labels, lr=3e-2, **kw)
    assert other["curve"]["lr"] == pytest.approx([3e-2, 1.5e-2])
    assert other["curve"]["train_loss"][1] != base["curve"]["train_loss"][1]
    assert other["metrics"] != base["metrics"]


def test_resume_with_other_hyperparameters_is_refused(tiny_data, tmp_path):
    data, labels = tiny_data
    out = tmp_path / "run"
    kw = {**FAST, "subjects": [0], "folds": [0], "out_dir": out}
    run_protocol("sd", data, labels, **kw)
    lines = (out / "results.jsonl").read_text().splitlines()
    settings = json.loads((out / "settings.json").read_text())
    assert (settings["lr"], settings["dropout"], settings["batch_size"]) == (None,) * 3
    # the recipe's own values give the same results: the run resumes, nothing recomputed
    again = run_protocol("sd", data, labels, lr=1e-3, dropout=0.5, batch_size=256, **kw)
    assert [json.dumps(r) for r in again] == [json.dumps(json.loads(x)) for x in lines]
    for extra, match in [({"lr": 2e-3}, r"\(lr: None -> 0\.002\)"),
                         ({"dropout": 0.3}, r"\(dropout: None -> 0\.3\)"),
                         ({"batch_size": 64}, r"\(batch_size: None -> 64\)")]:
        with pytest.raises(ParameterError, match=r"holds results computed with other "
                                                 r"settings " + match):
            run_protocol("sd", data, labels, **extra, **{**kw, "folds": [0, 1]})
    assert (out / "results.jsonl").read_text().splitlines() == lines
    # a directory written before these keywords existed (no keys) resumes with the recipe
    old = {k: v for k, v in settings.items() if k not in ("lr", "dropout", "batch_size")}
    (out / "settings.json").write_text(json.dumps(old))
    assert len(run_protocol("sd", data, labels, **kw)) == 1
    with pytest.raises(ParameterError, match=r"\(lr: None -> 0\.002\)"):
        run_protocol("sd", data, labels, lr=2e-3, **kw)
    assert (out / "results.jsonl").read_text().splitlines() == lines


@pytest.mark.parametrize("extra, match", [
    ({"lr": 0}, r"lr=0 is out of range: it must be > 0\.0; pass a positive initial"),
    ({"lr": float("nan")}, r"lr must be finite, got nan"),
    ({"lr": "fast"}, r"lr must be a number, got str"),
    ({"dropout": 1.0}, r"dropout=1\.0 is out of range: it must be >= 0\.0 and < 1\.0"),
    ({"dropout": -0.1}, r"dropout=-0\.1 is out of range"),
    ({"batch_size": 0}, r"batch_size=0 is out of range: it must be >= 1; pass a positive"),
    ({"batch_size": 2.5}, r"batch_size must be an integer, got float"),
    ({"batch_size": 64, "overrides": {"batch_size": 32}},
     r"\['batch_size'\] given both as keyword argument\(s\) and in overrides"),
])
def test_bad_hyperparameters(tiny_data, extra, match):
    data, labels = tiny_data
    with pytest.raises(ParameterError, match=match):
        run_protocol("sd", data, labels, subjects=[0], folds=[0], **{**FAST, **extra})


def test_result_store_settings_guard_only_protects_results(tmp_path):
    from physioemo.evaluation.protocols import ResultStore
    from physioemo.exceptions import ParameterError

    ResultStore(tmp_path, {"lr": 0.5}).open()
    # a run that failed before its first result does not hold the folder hostage
    store = ResultStore(tmp_path, {"lr": 0.1}).open()
    assert json.loads((tmp_path / "settings.json").read_text()) == {"lr": 0.1}
    store.append({"subject": 1, "fold": 0})
    with pytest.raises(ParameterError, match=r"other settings \(lr: 0.1 -> 0.5\)"):
        ResultStore(tmp_path, {"lr": 0.5}).open()
    assert ResultStore(tmp_path, {"lr": 0.1}).open().done() == {(1, 0)}


class Constant(nn.Module):
    """Predicts the same class scores for every window (a learned bias only)."""

    def __init__(self, n_outputs=5):
        super().__init__()
        self.bias = nn.Parameter(torch.tensor([0.0] * (n_outputs - 1) + [10.0]))  # class 4

    def forward(self, x):
        return self.bias.expand(x.shape[0], -1) + 0 * x[:, :1, 0]


def test_val_metrics_score_the_validation_block_with_the_selected_model(tiny_data):
    from sklearn.metrics import accuracy_score, f1_score

    data, labels = tiny_data
    built = []

    def constant_fn(n_outputs, dropout, graph, n_channels, n_times):
        built.append(Constant(n_outputs))
        return built[-1]

    fast = {**FAST, "model_fn": constant_fn, "epochs": 3}
    # subject 2, fold 2: validation clips rated [5, 5, 4], test clips [2, 3, 3]
    (r,) = run_protocol("sd-strict", data, labels, subjects=[1], folds=[2], **fast)
    # the model holds the weights selected on the validation clips; it predicts one class
    c = int(torch.argmax(built[0].bias.detach()))
    assert c == 4 and r["val_metrics"]["accuracy"] != r["metrics"]["accuracy"]
    for key, clips in (("val_metrics", r["val_clips"]), ("metrics", r["test_clips"])):
        y = np.repeat(labels[1, clips, 0], 60)  # 60 non-overlapping 1-s windows per clip
        pred = np.full_like(y, c)
        assert r[key]["n_windows"] == len(y) == 180
        assert r[key]["accuracy"] == pytest.approx(100 * accuracy_score(y, pred))
        assert r[key]["weighted_f1"] == pytest.approx(
            100 * f1_score(y, pred, average="weighted", zero_division=0))
    # sd: the fixed class-balanced crop of the validation block
    (r,) = run_protocol("sd", data, labels, subjects=[0], folds=[3],
                        overrides={"n_val": 150, "n_test": 120}, **FAST)
    assert (r["val_metrics"]["n_windows"], r["metrics"]["n_windows"]) == (150, 120)
    assert r["val_block"] == 2 and set(r["val_metrics"]) == set(r["metrics"])


def test_results_of_an_older_version_are_never_resumed(tiny_data, tmp_path):
    """Folders from before RESULTS_VERSION (other init, eps, batches, dropout) are refused."""
    from physioemo.evaluation.protocols import RESULTS_VERSION

    data, labels = tiny_data
    kw = {**FAST, "subjects": [0], "folds": [0], "out_dir": tmp_path}
    run_protocol("sd", data, labels, **kw)
    settings = json.loads((tmp_path / "settings.json").read_text())
    assert settings["results_version"] == RESULTS_VERSION == 2
    del settings["results_version"]  # as written by physioemo before the version existed
    (tmp_path / "settings.json").write_text(json.dumps(settings))
    with pytest.raises(ParameterError, match=r"results_version: None -> 2"):
        run_protocol("sd", data, labels, **kw)


def test_normalization_is_recorded_and_guards_resume(tiny_data, tmp_path):
    from physioemo.models import load_checkpoint

    data, labels = tiny_data
    out = tmp_path / "run"
    kw = {**FAST, "model_fn": None, "subjects": [0], "folds": [0], "out_dir": out}
    recs = run_protocol("sd", data, labels, normalization="causal", **kw)
    assert recs[0]["normalization"] == "causal"
    assert json.loads((out / "settings.json").read_text())["normalization"] == "causal"
    _, extra = load_checkpoint(out / "checkpoints" / "subject01.pt")
    assert extra["normalization"] == "causal"
    with pytest.raises(ParameterError, match=r"\(normalization: 'causal' -> 'paper'\)"):
        run_protocol("sd", data, labels, **{**kw, "folds": [0, 1]})
    # a folder written before the forms existed (no key) resumes as paper, not as causal
    settings = json.loads((out / "settings.json").read_text())
    del settings["normalization"]
    (out / "settings.json").write_text(json.dumps(settings))
    assert len(run_protocol("sd", data, labels, **kw)) == 1
    with pytest.raises(ParameterError, match=r"\(normalization: 'paper' -> 'causal'\)"):
        run_protocol("sd", data, labels, normalization="causal", **kw)
    with pytest.raises(ParameterError, match="normalization='live' is not a valid option"):
        run_protocol("sd", data, labels, normalization="live", **FAST)
