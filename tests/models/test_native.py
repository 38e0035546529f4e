"""The fused native kernels against the PyTorch layers they replace (the oracle)."""

import copy
import logging
import shutil

import pytest
import torch
import torch.nn.functional as F

from physioemo.models import HiSTN, histn
from physioemo.models.histn import _bn, _pool2
from physioemo.models.layers import _native
from physioemo.models.layers._taps import depthwise_taps

HAVE_CC = shutil.which("cc") is not None or shutil.which("gcc") is not None
needs_native = pytest.mark.skipif(not HAVE_CC, reason="no C compiler to build the kernel")


@pytest.fixture(autouse=True)
def _threads():
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


@needs_native
def test_kernel_builds_where_there_is_a_compiler():
    assert _native.available()


def _pair(graph, dropout, n_times=128, seed=0):
    torch.manual_seed(seed)
    native = HiSTN(graph=graph, dropout=dropout, n_times=n_times)
    with torch.no_grad():  # non-trivial BatchNorm affine parameters
        for bn in (native.bn1, native.bn2, native.bn3):
            bn.weight.uniform_(0.5, 1.5)
            bn.bias.uniform_(-0.5, 0.5)
    ref = copy.deepcopy(native)
    ref.native = False
    return native, ref


def _step(model, x, y, seed):
    torch.manual_seed(seed)  # the same dropout draws for both paths
    model.zero_grad(set_to_none=True)
    out = model(x)
    F.cross_entropy(out, y).backward()
    return out.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}


def _close(a, b):
    scale = max(float(b.abs().max()), 1e-3)
    torch.testing.assert_close(a, b, rtol=1e-4, atol=2e-5 * scale)


def _spec_dropout(x, p, training):
    """histn._dropout for the reference model: the masks drawn as the kernels draw them.

    The kernels hash element indices with two seeds that they take from PyTorch's
    generator (one draw for the head, one for the classifier's input); drawing the same
    specs here, from the same generator state, gives the reference the same masks.
    """
    if not training or p == 0.0:
        return x
    return x * _native.dropout_mask(x.numel(), _native.dropout_spec(p)).view(x.shape)


@needs_native
@pytest.mark.parametrize("graph,dropout,threads", [("G0", 0.5, 2), ("G1", 0.0, 1),
                                                    ("G2", 0.2, 2)])
def test_training_steps_equal_the_pytorch_layers(graph, dropout, threads, monkeypatch):
    monkeypatch.setattr(histn, "_dropout", _spec_dropout)
    torch.set_num_threads(threads)
    native, ref = _pair(graph, dropout)
    opts = [torch.optim.Adam(m.parameters(), 1e-2) for m in (native, ref)]
    g = torch.Generator().manual_seed(1)
    for it in range(3):  # later steps start from updated weights and running statistics
        x = torch.randn(32, 14, 128, generator=g) * 20
        y = torch.randint(0, 5, (32,), generator=g)
        out_n, grads_n = _step(native.train(), x, y, it)
        out_r, grads_r = _step(ref.train(), x, y, it)
        _close(out_n, out_r)
        assert grads_n.keys() == grads_r.keys()
        for name in grads_r:
            _close(grads_n[name], grads_r[name])
        for opt in opts:
            opt.step()
        native.apply_constraints()
        ref.apply_constraints()
    for (name, a), (_, b) in zip(native.named_buffers(), ref.named_buffers(), strict=True):
        if "running" in name or "num_batches" in name:
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    # evaluation: running statistics, no dropout; with and without autograd
    x = torch.randn(16, 14, 128, generator=g) * 20
    native.eval()
    ref.eval()
    with torch.no_grad():
        _close(native(x), ref(x))
    out_n, grads_n = _step(native, x, torch.zeros(16, dtype=torch.long), 0)
    out_r, grads_r = _step(ref, x, torch.zeros(16, dtype=torch.long), 0)
    for name in grads_r:
        _close(grads_n[name], grads_r[name])


@needs_native
def test_odd_lengths_and_batch_one():
    # n_times 57: 53 samples after the 5 taps, so the pooling drops one; batch 1
    native, ref = _pair("G0", 0.0, n_times=57)
    x = torch.randn(1, 14, 57) * 20
    for mode in (True, False):
        native.train(mode)
        ref.train(mode)
        out_n, grads_n = _step(native, x, torch.tensor([3]), 0)
        out_r, grads_r = _step(ref, x, torch.tensor([3]), 0)
        _close(out_n, out_r)
        for name in grads_r:
            _close(grads_n[name], grads_r[name])


@needs_native
def test_head_kernel_alone_with_a_mask():
    torch.manual_seed(5)
    y1 = (torch.randn(8, 3, 40) * 3 + 1).requires_grad_()
    w = (torch.randn(3, 7) * 0.4).requires_grad_()
    mask = (torch.rand(8, 3, 17) >= 0.3).float() / 0.7
    bn1, bn2 = _bn(3), _bn(3)
    bns = (copy.deepcopy(bn1), copy.deepcopy(bn2))
    out = _native.head(y1, bn1, w, bn2, mask)
    ref = _pool2(F.elu(bns[1](depthwise_taps(F.elu(bns[0](y1)), w)))) * mask
    _close(out, ref)
    g = torch.randn_like(ref)
    for a, b in zip(torch.autograd.grad(out, [y1, w, bn1.weight, bn2.bias], g),
                    torch.autograd.grad(ref, [y1, w, bns[0].weight, bns[1].bias], g),
                    strict=True):
        _close(a, b)
    torch.testing.assert_close(bn2.running_var, bns[1].running_var)


def test_without_a_compiler_the_model_falls_back(monkeypatch, tmp_path, caplog):
    monkeypatch.setattr(_native, "_lib", None)
    monkeypatch.setattr(_native, "_tried", False)
    monkeypatch.setenv("CC", str(tmp_path / "no-such-compiler"))
    monkeypatch.setenv("PHYSIOEMO_CACHE_DIR", str(tmp_path / "cache"))
    with caplog.at_level(logging.WARNING, logger="physioemo"):
        assert not _native.available()
    assert "native HiSTN kernel is unavailable" in caplog.text
    torch.manual_seed(0)
    model = HiSTN()
    ref = copy.deepcopy(model)
    ref.native = False
    x = torch.randn(4, 14, 128)
    torch.testing.assert_close(model.eval()(x), ref.eval()(x))
    with pytest.raises(RuntimeError, match="unavailable"):
        _native.head(x, model.bn1, model.electrode.weight, model.bn2)


@pytest.mark.skipif(not HAVE_CC, reason="needs a C compiler to build a stand-in library")
def test_a_library_without_the_kernels_falls_back(monkeypatch, tmp_path, caplog):
    """A cached library that lacks a kernel symbol is not used (no AttributeError)."""
    import ctypes
    import shutil
    import subprocess

    src = tmp_path / "empty.c"
    src.write_text("int physioemo_unrelated(void) { return 1; }\n")
    lib = tmp_path / "empty.so"
    subprocess.run([shutil.which("cc") or "gcc", "-shared", "-fPIC", str(src), "-o",
                    str(lib)], check=True)
    monkeypatch.setattr(_native, "_lib", None)
    monkeypatch.setattr(_native, "_tried", False)
    monkeypatch.setattr(_native, "_build", lambda cache: ctypes.CDLL(str(lib)))
    with caplog.at_level(logging.WARNING, logger="physioemo"):
        assert not _native.available()
    assert "native HiSTN kernel is unavailable" in caplog.text
    assert "histn_head_forward" in caplog.text


def test_disabled_by_environment(monkeypatch):
    monkeypatch.setattr(_native, "_lib", None)
    monkeypatch.setattr(_native, "_tried", False)
    monkeypatch.setenv(_native.ENV_VAR, "0")
    assert not _native.available()
    assert not _native.supports(torch.zeros(2, 14, 128), 5)


@needs_native
def test_kernel_dropout_rate_and_seeds():
    spec = _native.dropout_spec(0.3, torch.Generator().manual_seed(0))
    n = 200_000
    mask = _native.dropout_mask(n, spec)
    values = mask.unique().tolist()
    assert values[0] == 0.0 and values[1:] == [pytest.approx(1 / 0.7)]
    dropped = int((mask == 0).sum())
    # binomial(n, 0.3): 5 standard deviations
    assert abs(dropped - 0.3 * n) < 5 * (n * 0.3 * 0.7) ** 0.5
    # neighbouring elements are independent: the 2x2 table of (kept_i, kept_i+1)
    kept = (mask > 0).numpy()
    both = (kept[:-1] & kept[1:]).mean()
    assert abs(both - 0.49) < 0.01
    again = _native.dropout_mask(n, _native.dropout_spec(0.3, torch.Generator().manual_seed(0)))
    other = _native.dropout_mask(n, _native.dropout_spec(0.3, torch.Generator().manual_seed(1)))
    assert torch.equal(mask, again) and not torch.equal(mask, other)


@needs_native
def test_head_kernel_draws_the_mask_it_reports():
    torch.manual_seed(6)
    x = torch.randn(4, 3, 40) * 5
    w = torch.randn(3, 5, requires_grad=True)
    spec = _native.dropout_spec(0.5)
    bn1, bn2 = _bn(3), _bn(3)
    drawn = _native.head(x, bn1, w, bn2, dropout=spec)
    mask = _native.dropout_mask(drawn.numel(), spec).view(drawn.shape)
    given = _native.head(x, copy.deepcopy(bn1), w, copy.deepcopy(bn2), mask=mask)
    torch.testing.assert_close(drawn, given, rtol=0, atol=0)
    assert (drawn == 0).float().mean() > 0.3  # the dropout did drop
    g = torch.randn_like(drawn)
    torch.testing.assert_close(torch.autograd.grad(drawn, w, g)[0],
                               torch.autograd.grad(given, w, g)[0], rtol=0, atol=0)


@needs_native
def test_training_is_repeatable_bit_for_bit():
    # per-thread partial sums are added in thread order, and the dropout comes from seeds
    # drawn from torch's generator: two runs from one seed end with identical weights
    torch.set_num_threads(2)
    states = []
    for _ in range(2):
        torch.manual_seed(7)
        model = HiSTN(dropout=0.5).train()
        opt = torch.optim.Adam(model.parameters(), 1e-2)
        g = torch.Generator().manual_seed(3)
        for _ in range(3):
            x = torch.randn(64, 14, 128, generator=g) * 20
            y = torch.randint(0, 5, (64,), generator=g)
            opt.zero_grad()
            F.cross_entropy(model(x), y).backward()
            opt.step()
        states.append(model.state_dict())
    for k in states[0]:
        assert torch.equal(states[0][k], states[1][k]), k
