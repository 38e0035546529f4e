"""The fused Numba kernels against the PyTorch layers they replace (the oracle)."""

import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from physioemo.exceptions import ParameterError
from physioemo.models import HiSTN
from physioemo.models.histn import _bn, _pool2
from physioemo.models.layers import GlobalCollapse, RegionAttentionFusion, _fused
from physioemo.models.layers._taps import depthwise_taps


@pytest.fixture(autouse=True)
def _threads():
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


def _pair(graph, dropout, n_times=128, seed=0):
    torch.manual_seed(seed)
    fused = HiSTN(graph=graph, dropout=dropout, n_times=n_times)
    with torch.no_grad():  # non-trivial BatchNorm affine parameters
        for bn in (fused.bn1, fused.bn2, fused.bn3):
            bn.weight.uniform_(0.5, 1.5)
            bn.bias.uniform_(-0.5, 0.5)
    ref = copy.deepcopy(fused)
    ref.native = False
    return fused, ref


def _step(model, x, y, seed):
    torch.manual_seed(seed)  # the same dropout draws for both paths
    model.zero_grad(set_to_none=True)
    out = model(x)
    F.cross_entropy(out, y).backward()
    return out.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}


def _close(a, b):
    scale = max(float(b.detach().abs().max()), 1e-3)
    torch.testing.assert_close(a, b, rtol=1e-4, atol=2e-5 * scale)


@pytest.mark.parametrize("graph,dropout,threads", [("G0", 0.5, 2), ("G1", 0.0, 1),
                                                    ("G2", 0.2, 2)])
def test_training_steps_equal_the_pytorch_layers(graph, dropout, threads):
    # dropout masks are drawn from torch's generator in the same order on both paths, so
    # the seed alone makes the draws equal
    torch.set_num_threads(threads)
    fused, ref = _pair(graph, dropout)
    opts = [torch.optim.Adam(m.parameters(), 1e-2) for m in (fused, ref)]
    g = torch.Generator().manual_seed(1)
    for it in range(3):  # later steps start from updated weights and running statistics
        x = torch.randn(32, 14, 128, generator=g) * 20
        y = torch.randint(0, 5, (32,), generator=g)
        out_n, grads_n = _step(fused.train(), x, y, it)
        out_r, grads_r = _step(ref.train(), x, y, it)
        _close(out_n, out_r)
        assert grads_n.keys() == grads_r.keys()
        for name in grads_r:
            _close(grads_n[name], grads_r[name])
        for opt in opts:
            opt.step()
        fused.apply_constraints()
        ref.apply_constraints()
    for (name, a), (_, b) in zip(fused.named_buffers(), ref.named_buffers(), strict=True):
        if "running" in name or "num_batches" in name:
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    # evaluation: running statistics, no dropout; with and without autograd
    x = torch.randn(16, 14, 128, generator=g) * 20
    fused.eval()
    ref.eval()
    with torch.no_grad():
        _close(fused(x), ref(x))
    out_n, grads_n = _step(fused, x, torch.zeros(16, dtype=torch.long), 0)
    out_r, grads_r = _step(ref, x, torch.zeros(16, dtype=torch.long), 0)
    for name in grads_r:
        _close(grads_n[name], grads_r[name])


def test_the_fused_path_runs_the_kernels(monkeypatch):
    # the comparison above would pass vacuously if HiSTN fell back to PyTorch operators
    calls = []
    run = _fused._run
    monkeypatch.setattr(_fused, "_run", lambda name, *a: (calls.append(name), run(name, *a)))
    fused, ref = _pair("G0", 0.5)
    _step(fused.train(), torch.randn(4, 14, 128), torch.zeros(4, dtype=torch.long), 0)
    assert calls == ["head_forward", "block_forward", "tail_forward", "tail_backward",
                     "block_backward", "head_backward"]
    calls.clear()
    _step(ref.train(), torch.randn(4, 14, 128), torch.zeros(4, dtype=torch.long), 0)
    assert calls == []


def test_odd_lengths_and_batch_one():
    # n_times 57: 53 samples after the 5 taps, so the pooling drops one; batch 1
    fused, ref = _pair("G0", 0.0, n_times=57)
    x = torch.randn(1, 14, 57) * 20
    for mode in (True, False):
        fused.train(mode)
        ref.train(mode)
        out_n, grads_n = _step(fused, x, torch.tensor([3]), 0)
        out_r, grads_r = _step(ref, x, torch.tensor([3]), 0)
        _close(out_n, out_r)
        for name in grads_r:
            _close(grads_n[name], grads_r[name])


def _head_ref(y1, bns, w, mask, kernels=None, pad_before=0):
    if kernels is not None:  # the "same" filter of x: pad, then a valid filter
        n = kernels.shape[1]
        y1 = depthwise_taps(F.pad(y1, (pad_before, n - 1 - pad_before)), kernels)
    out = _pool2(F.elu(bns[1](depthwise_taps(F.elu(bns[0](y1)), w))))
    return out * mask if mask is not None else out


@pytest.mark.parametrize("B,C,T,K,masked", [(8, 3, 40, 7, True),
                                            (2, 3, 8, 7, False),    # n_times = K + 1
                                            (1, 70, 20, 5, True),   # more than 64 channels
                                            (1, 2, 5000, 5, True)])  # over 4096 samples
def test_head_kernel_alone(B, C, T, K, masked):
    # the sizes beyond the old C kernel's fixed buffers (64 channels, 4096 samples) and the
    # shortest window: the kernels allocate what they need
    torch.manual_seed(5)
    y1 = (torch.randn(B, C, T) * 3 + 1).requires_grad_()
    w = (torch.randn(C, K) * 0.4).requires_grad_()
    T3 = (T - K + 1) // 2
    mask = (torch.rand(B, C, T3) >= 0.3).float() / 0.7 if masked else None
    bn1, bn2 = _bn(C), _bn(C)
    bns = (copy.deepcopy(bn1), copy.deepcopy(bn2))
    out = _fused.head(y1, bn1, w, bn2, mask)
    ref = _head_ref(y1, bns, w, mask)
    _close(out, ref)
    g = torch.randn_like(ref)
    for a, b in zip(torch.autograd.grad(out, [y1, w, bn1.weight, bn2.bias], g),
                    torch.autograd.grad(ref, [y1, w, bns[0].weight, bns[1].bias], g),
                    strict=True):
        _close(a, b)
    torch.testing.assert_close(bn2.running_var, bns[1].running_var)


@pytest.mark.parametrize("n_taps,pad_before", [(64, 31), (3, 0), (3, 2), (1, 0)])
def test_head_with_a_first_filter(n_taps, pad_before):
    torch.manual_seed(8)
    x = torch.randn(3, 4, 30)
    kernels = (torch.randn(4, n_taps) * 0.3).requires_grad_()
    w = (torch.randn(4, 5) * 0.4).requires_grad_()
    bn1, bn2 = _bn(4), _bn(4)
    bns = (copy.deepcopy(bn1), copy.deepcopy(bn2))
    out = _fused.head(x, bn1, w, bn2, kernels=kernels, pad_before=pad_before)
    ref = _head_ref(x, bns, w, None, kernels, pad_before)
    _close(out, ref)
    g = torch.randn_like(ref)
    for a, b in zip(torch.autograd.grad(out, [kernels, w], g),
                    torch.autograd.grad(ref, [kernels, w], g), strict=True):
        _close(a, b)


def test_entry_points_refuse_sizes_they_cannot_take():
    bn1, bn2 = _bn(3), _bn(3)
    x, w = torch.randn(2, 3, 10), torch.randn(3, 5)
    with pytest.raises(ParameterError, match=r"kernel_size <= n_times - 1 = 4"):
        _fused.head(x[..., :5], bn1, w, bn2)  # n_times = kernel_size: nothing to pool
    with pytest.raises(ParameterError, match=r"taps must be a torch.float32 CPU tensor of "
                                             r"shape \(3, 5\).*shape \(4, 5\)"):
        _fused.head(x, bn1, torch.randn(4, 5), bn2)
    with pytest.raises(ParameterError, match=r"mask must be .*shape \(2, 3, 3\)"):
        _fused.head(x, bn1, w, bn2, mask=torch.ones(2, 3, 4))
    with pytest.raises(ParameterError, match=r"x must be a torch.float32 CPU tensor"):
        _fused.head(x.double(), bn1, w, bn2)
    with pytest.raises(ParameterError, match=r"pad_before=3 must be an integer in \[0, 2\]"):
        _fused.head(x, bn1, w, bn2, kernels=torch.randn(3, 3), pad_before=3)
    with pytest.raises(ParameterError, match=r"bn2 must be an affine BatchNorm1d\(3\)"):
        _fused.head(x, bn1, w, _bn(4))
    with pytest.raises(ParameterError, match=r"requires a gradient"):
        _fused.head(x.requires_grad_(), bn1, w, bn2, kernels=torch.randn(3, 3))
    h = torch.randn(2, 3, 6)
    with pytest.raises(ParameterError, match=r"pad_before=5 must be an integer in \[0, 4\]"):
        _fused.block(h, torch.eye(3), torch.randn(3, 5), 5, torch.eye(3), _bn(3))
    with pytest.raises(ParameterError, match=r"W must be .*shape \(3, 3\).*\(3, 4\)"):
        _fused.block(h, torch.eye(3), torch.randn(3, 5), 2, torch.randn(3, 4), _bn(3))
    fusion = RegionAttentionFusion([torch.tensor([0, 1]), torch.tensor([2])])
    col = GlobalCollapse(2)
    lin = torch.nn.Linear(3 + 2 + 1, 5)
    hm = torch.randn(4, 3)
    with pytest.raises(ParameterError, match=r"region numbers in \[0, 1\].*\[0, 2\]"):
        _fused.tail(hm, hm, torch.tensor([0, 1, 2], dtype=torch.int32), fusion, fusion,
                    torch.eye(2), col, col, lin)
    with pytest.raises(ParameterError, match=r"classifier.weight must be .*\(5, 6\)"):
        _fused.tail(hm, hm, torch.tensor([0, 0, 1], dtype=torch.int32), fusion, fusion,
                    torch.eye(2), col, col, torch.nn.Linear(7, 5))
    with pytest.raises(ParameterError, match=r"1 <= n_regions <= n_channels=3"):
        _fused.tail(hm, hm, torch.tensor([0, 0, 1], dtype=torch.int32), fusion, fusion,
                    torch.eye(4), col, col, lin)


def test_block_at_the_size_limits():
    # kernel_size 1 (no padding) and the largest pad_before, against the PyTorch layers
    torch.manual_seed(9)
    for C, T, K, p0 in ((5, 7, 1, 0), (3, 4, 4, 3)):
        h = torch.randn(3, C, T, requires_grad=True)
        M, W = torch.randn(C, C, requires_grad=True), torch.randn(C, C, requires_grad=True)
        taps = torch.randn(C, K, requires_grad=True)
        bn = _bn(C)
        ref_bn = copy.deepcopy(bn)
        a, hm = _fused.block(h, M, taps, p0, W, bn)
        m = M.transpose(0, 1) @ h
        d = depthwise_taps(F.pad(m, (p0, K - 1 - p0)), taps)
        a_ref = F.elu(ref_bn(W.transpose(0, 1) @ d)).mean(-1)
        _close(a, a_ref)
        _close(hm, h.mean(-1))
        g = torch.randn_like(a)
        for u, v in zip(torch.autograd.grad((a * g).sum() + hm.sum(), [h, M, W, taps]),
                        torch.autograd.grad((a_ref * g).sum() + h.mean(-1).sum(),
                                            [h, M, W, taps]), strict=True):
            _close(u, v)


def test_disabled_by_environment(monkeypatch):
    monkeypatch.setenv(_fused.ENV_VAR, "0")
    assert not _fused.available()
    assert not _fused.supports(torch.zeros(2, 14, 128), 5)
    calls = []
    monkeypatch.setattr(_fused, "_run", lambda *a: calls.append(a))
    HiSTN().train()(torch.randn(2, 14, 128)).sum().backward()
    assert calls == []  # PyTorch operators only
    monkeypatch.setenv(_fused.ENV_VAR, "1")
    assert _fused.supports(torch.zeros(2, 14, 128), 5)


def test_training_is_repeatable_bit_for_bit_on_any_thread_count():
    # parameter gradients are summed per sample, then over samples in order, and the
    # dropout comes from torch's generator: runs from one seed end with identical weights
    # (the kernels are serial; torch's own operators give the same bits on 1 and 2 threads
    # here too)
    states = []
    for threads in (2, 2, 1):
        torch.set_num_threads(threads)
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
    for other in states[1:]:
        for k in states[0]:
            assert torch.equal(states[0][k], other[k]), k


_NO_JIT = """
import copy, json, torch, torch.nn.functional as F
from physioemo.models import HiSTN
torch.manual_seed(0)
fused = HiSTN(n_times=16, dropout=0.5).train()
ref = copy.deepcopy(fused)
ref.native = False
x, y = torch.randn(2, 14, 16) * 5, torch.tensor([1, 4])
res = []
for m in (fused, ref):
    torch.manual_seed(1)
    out = m(x)
    F.cross_entropy(out, y).backward()
    res.append([out.detach()] + [p.grad for p in m.parameters()])
rel = max(float((a - b).abs().max() / b.abs().max().clamp_min(1e-3))
          for a, b in zip(*res))
import numba
print(json.dumps({"rel": rel, "jit_disabled": bool(numba.config.DISABLE_JIT)}))
"""


def test_kernels_as_plain_python_give_the_same_values():
    env = dict(os.environ, NUMBA_DISABLE_JIT="1", PHYSIOEMO_NATIVE="1")
    proc = subprocess.run([sys.executable, "-c", _NO_JIT], env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    assert res["jit_disabled"]
    assert res["rel"] < 1e-4


def test_nothing_in_the_package_compiles_or_loads_a_library():
    # Numba is the only kernel language: no C source, no shared library, no ctypes or
    # compiler call anywhere in physioemo
    import physioemo

    root = Path(physioemo.__file__).parent
    assert not [p for p in root.rglob("*") if p.suffix in {".c", ".so", ".dll", ".dylib"}]
    for py in root.rglob("*.py"):
        text = py.read_text()
        for word in ("ctypes", "CDLL", '"cc"', "gcc"):
            assert word not in text, (py, word)
