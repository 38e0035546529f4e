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
    lines = [json.loads(x) for x in (tmp_path / "2" / "results.jsonl").read_text().splitlines()]
    assert sorted(x["subject"] for x in lines) == [1, 3]


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


# -- learning check on a generated DREAMER file with a planted effect ----------------------
# Quick recipe (not the paper's): batch 64, lr 3e-3, 20 epochs x 20 steps, fold 2 only.
QUICK = {"batch_size": 64, "lr": {0: 3e-3}, "n_val": 300, "n_test": 300}
# Measured with this recipe on subjects 1-2 of this file, seeds 0, 1, 2 (mean over subjects):
# weighted F1 gaussian 58.8 / 59.4 / 68.8, one-hot 66.3 / 65.8 / 64.2; Seq2HR gaussian
# 78.3 / 58.4 / 84.2 vs one-hot 47.8 / 32.8 / 59.3 (margins 30.5 / 25.6 / 24.9 points).
# A constant predictor scores ~7 % F1 on the balanced test crops.
F1_MIN = 45.0
SEQ2HR_MARGIN = 10.0


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    from physioemo.datasets import load_preprocessed, make_synthetic_dreamer

    d = tmp_path_factory.mktemp("syn")
    make_synthetic_dreamer(d / "dreamer.mat", n_subjects=2, stimulus_seconds=62.0, seed=0)
    return load_preprocessed(d / "dreamer.mat", cache_dir=d / "cache")


@pytest.mark.slow
def test_sd_learns_planted_effect_and_gaussian_raises_seq2hr(synthetic):
    data, labels = synthetic
    out = {}
    for smoothing in ("gaussian", "onehot"):
        recs = run_protocol("sd", data, labels, epochs=20, steps_per_epoch=20, folds=[2],
                            overrides=QUICK, smoothing=smoothing, n_threads=2, verbose=False,
                            save_checkpoints=False)
        out[smoothing] = {m: np.mean([r["metrics"][m] for r in recs])
                          for m in ("weighted_f1", "seq2hr")}
    # chance is 20 % (balanced test crops over 4-5 present classes)
    assert out["onehot"]["weighted_f1"] > F1_MIN
    assert out["gaussian"]["weighted_f1"] > F1_MIN
    assert out["gaussian"]["seq2hr"] > out["onehot"]["seq2hr"] + SEQ2HR_MARGIN
