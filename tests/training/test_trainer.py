import numpy as np
import pytest
import torch
from torch import nn

from physioemo.exceptions import ParameterError
from physioemo.training.trainer import Trainer, WindowSet, lr_at


class Tiny(nn.Module):
    """A small stand-in classifier with the HiSTN hooks the trainer uses."""

    def __init__(self, n_channels=3, n_outputs=5, dropout=0.0):
        super().__init__()
        self.conv = nn.Conv1d(n_channels, 4, 5, padding=2, bias=False)
        self.lin = nn.Linear(8, n_outputs)
        self.drop = nn.Dropout(dropout)
        self.n_constraints = 0
        self.config = {"n_channels": n_channels}

    def forward(self, x):
        h = self.conv(x)
        return self.lin(self.drop(torch.cat([h.pow(2).mean(-1).log1p(), h.mean(-1)], 1)))

    def apply_constraints(self):
        self.n_constraints += 1

    def freeze_first_temporal_conv(self, freeze=True):
        self.conv.weight.requires_grad_(not freeze)


def _clips(n_rows=6, n_channels=3, n_times=400, seed=0):
    rng = np.random.default_rng(seed)
    data = rng.standard_normal((n_rows, n_channels, n_times)).astype(np.float32)
    labels = np.array([0, 0, 0, 2, 2, 4])[:n_rows]
    # planted effect: amplitude grows with the class
    data *= (1 + labels)[:, None, None].astype(np.float32)
    return data, labels


def test_gather_equals_slicing():
    data, labels = _clips()
    rows = np.array([0, 5, 3, 3])
    starts = np.array([0, 272, 17, 100])
    ws = WindowSet(data, labels, rows, starts, window_samples=128)
    X = ws.gather()
    expected = np.stack([data[r, :, s:s + 128] for r, s in zip(rows, starts, strict=True)])
    np.testing.assert_array_equal(X, expected)
    np.testing.assert_array_equal(ws.gather([2, 0]), expected[[2, 0]])
    np.testing.assert_array_equal(ws.y, [0, 4, 2, 2])


def test_windowset_rejects_windows_outside_clip():
    data, labels = _clips()
    with pytest.raises(ParameterError, match="window starts must lie in 0..272"):
        WindowSet(data, labels, [0], [273])


def test_balanced_sampler_uniform_over_present_classes_then_clips():
    data, labels = _clips()
    starts = np.array([0, 10, 20, 30])
    ws = WindowSet.from_starts(data, labels, starts)
    draw = ws.balanced_sampler(np.random.default_rng(0))
    idx = draw(60000)
    y = ws.y[idx]
    # classes 0, 2, 4 present -> 1/3 each (class 1, 3 never); 3 sigma ~ 0.006
    freq = np.bincount(y, minlength=5) / len(y)
    np.testing.assert_allclose(freq, [1 / 3, 0, 1 / 3, 0, 1 / 3], atol=0.01)
    # within class 0 the 3 clips are equally likely, and every start is used
    rows0 = ws.rows[idx][y == 0]
    np.testing.assert_allclose(np.bincount(rows0, minlength=3)[:3] / len(rows0), 1 / 3,
                               atol=0.015)
    assert set(ws.starts[idx]) == set(starts)


@pytest.mark.parametrize("n", [60, 7, 2])
def test_exact_balanced_sampler_takes_batch_over_classes_per_class(n):
    data, labels = _clips()  # classes 0 (3 clips), 2 (2 clips), 4 (1 clip)
    starts = np.array([0, 10, 20, 30])
    ws = WindowSet.from_starts(data, labels, starts)
    draw = ws.balanced_sampler(np.random.default_rng(0), exact=True)
    extra = np.zeros(5, dtype=int)
    rows0, seen = [], set()
    for _ in range(3000):
        idx = draw(n)
        counts = np.bincount(ws.y[idx], minlength=5)
        # n // 3 of each present class; the n % 3 others on distinct classes
        assert counts[[1, 3]].sum() == 0 and counts.sum() == n
        over = counts[[0, 2, 4]] - n // 3
        assert set(over) <= {0, 1} and over.sum() == n % 3
        extra[[0, 2, 4]] += over
        rows0.append(ws.rows[idx][ws.y[idx] == 0])
        seen.update(ws.starts[idx])
    if n % 3:  # the remainder goes to each class equally often
        np.testing.assert_allclose(extra[[0, 2, 4]] / extra.sum(), 1 / 3, atol=0.03)
    rows0 = np.concatenate(rows0)
    np.testing.assert_allclose(np.bincount(rows0, minlength=3)[:3] / len(rows0), 1 / 3,
                               atol=0.03)
    assert seen == set(starts)


def test_exact_balanced_batches_are_shuffled_and_used_by_the_trainer(monkeypatch):
    data, labels = _clips()
    ws = WindowSet.from_starts(data, labels, np.arange(0, 200, 8))
    idx = ws.balanced_sampler(np.random.default_rng(0), exact=True)(30)
    assert len(set(ws.y[idx[:10]])) > 1  # not grouped by class
    seen = []

    class SpyTiny(Tiny):
        def forward(self, x):
            if self.training:
                seen.append(x.shape[0])
            return super().forward(x)

    calls = []
    orig = WindowSet.balanced_sampler

    def spy(self, rng, exact=False):
        calls.append(exact)
        return orig(self, rng, exact)

    monkeypatch.setattr(WindowSet, "balanced_sampler", spy)
    Trainer(SpyTiny(), epochs=1, batch_size=9, steps_per_epoch=2, sampling="balanced-exact",
            select="last", n_threads=1, verbose=False).fit(ws)
    assert calls == [True] and seen == [9, 9]


def test_adam_uses_keras_epsilon(monkeypatch):
    from physioemo.training.trainer import ADAM_EPS

    assert ADAM_EPS == 1e-7
    eps = []

    class SpyAdam(torch.optim.Adam):
        def step(self, closure=None):
            eps.append(self.param_groups[0]["eps"])
            return super().step(closure)

    monkeypatch.setattr(torch.optim, "Adam", SpyAdam)
    _fit(epochs=1, steps_per_epoch=2)
    assert eps == [1e-7, 1e-7]


def test_first_adam_step_matches_a_numpy_adam_with_eps_1e7():
    # one step of Adam moves each weight by lr * g / (|g| + eps); with |g| ~ 1e-7 the
    # epsilon decides the step (1e-8 would give a step ~1.8x larger)
    data, labels = _clips(n_rows=1)
    ws = WindowSet.from_starts(data, np.array([0]), [0])

    class Lin(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.zeros(5))

        def forward(self, x):
            return self.w[None, :] * 1e-6 + 0 * x.sum()

    model = Lin()
    Trainer(model, epochs=1, batch_size=1, steps_per_epoch=1, lr=1.0, smoothing="onehot",
            select="last", n_threads=1, verbose=False).fit(ws)
    # gradient of the cross-entropy at w = 0 for target 0: 1e-6 * (softmax - onehot)
    g = 1e-6 * (np.full(5, 0.2) - np.eye(5)[0])
    expected = -1.0 * g / (np.abs(g) + 1e-7)
    np.testing.assert_allclose(model.w.detach().numpy(), expected, rtol=1e-4)


def test_lr_schedule_piecewise_constant():
    sched = {0: 1e-3, 30: 5e-4}
    assert lr_at(sched, 0) == 1e-3 and lr_at(sched, 29) == 1e-3
    assert lr_at(sched, 30) == 5e-4 and lr_at(sched, 49) == 5e-4
    assert lr_at(2e-3, 7) == 2e-3


def _fit(**kw):
    data, labels = _clips()
    train = WindowSet.from_starts(data, labels, np.arange(0, 200, 8))
    val = WindowSet.from_starts(data, labels, np.arange(200, 273, 24))
    torch.manual_seed(0)
    model = Tiny()
    params = {"epochs": 4, "batch_size": 16, "steps_per_epoch": 5, "lr": 1e-2, "seed": 1,
              "n_threads": 1, "verbose": False}
    params.update(kw)
    trainer = Trainer(model, **params).fit(train, val)
    return trainer, model, train, val


def test_fit_keeps_best_validation_weights_and_constrains_every_step():
    trainer, model, _, val = _fit()
    assert model.n_constraints == 4 * 5
    hist = trainer.history_
    assert len(hist["train_loss"]) == 4 and hist["lr"] == [1e-2] * 4
    assert trainer.best_epoch_ == int(np.argmin(hist["val_loss"]))
    assert trainer.loss(val) == pytest.approx(min(hist["val_loss"]), rel=1e-6)
    proba = trainer.predict_proba(val)
    np.testing.assert_allclose(proba.sum(1), 1, rtol=1e-6)


def test_fit_is_deterministic_for_a_seed():
    a, _, _, _ = _fit()
    b, _, _, _ = _fit()
    assert a.history_ == b.history_
    c, _, _, _ = _fit(seed=2)
    assert c.history_["train_loss"] != a.history_["train_loss"]


def test_freeze_first_conv_and_shuffle_class_weighting():
    torch.manual_seed(0)
    data, labels = _clips()
    train = WindowSet.from_starts(data, labels, np.arange(0, 200, 32))
    model = Tiny()
    conv0 = model.conv.weight.detach().clone()
    lin0 = model.lin.weight.detach().clone()
    Trainer(model, epochs=2, batch_size=10, lr=1e-2, sampling="shuffle", select="last",
            class_weighting=True, freeze_first_conv=True, n_threads=1,
            verbose=False).fit(train)
    # one epoch = ceil(42 / 10) = 5 batches
    assert model.n_constraints == 2 * 5
    assert torch.equal(model.conv.weight, conv0)
    assert not torch.equal(model.lin.weight, lin0)


def test_bad_settings_are_clear_errors():
    data, labels = _clips()
    train = WindowSet.from_starts(data, labels, [0])
    with pytest.raises(ParameterError, match="needs validation windows"):
        Trainer(Tiny(), epochs=1).fit(train)
    with pytest.raises(ParameterError, match="sampling='random' is not a valid option"):
        Trainer(Tiny(), sampling="random", select="last").fit(train)
