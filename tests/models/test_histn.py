import numpy as np
import pytest
import torch
import torch.nn.functional as F

from physioemo.exceptions import DataError, ParameterError
from physioemo.models import MODELS, HiSTN, build_model, load_checkpoint, save_checkpoint
from physioemo.models.layers import FusedTemporalConv

# Parameter counts from histn-spec §2, by hand (n_r = region sizes, K_r = Chebyshev orders,
# R = number of regions; the temporal head is the same for every graph):
#   head  = 8*64 kernels + 8*14 mixing + 2*14 BN + 14*5 taps + 2*14 BN         = 750
#   node  = sum(K_r + 1) + 14*5 depthwise + sum(n_r^2) pointwise + 2*14 BN
#   fuse  = 2 * sum(n_r^2 + n_r)      (two attention fusions F_a, F_b)
#   ring  = K_region + 1;  coll = 2 * (R^2 + R);  out = (14 + R + 1) * 5 + 5
# G0 (4,3,3,4; K 2; ring K 2): 750 + 12+70+50+28 + 128 + 3 + 40 + 100 = 1181
# G1 (3,3,2,3,3; K 1,2,1,2,1; ring K 2): 750 + 12+70+40+28 + 108 + 3 + 60 + 105 = 1176
# G2 (5,4,5; K 3; ring K 1): 750 + 12+70+66+28 + 160 + 2 + 24 + 95 = 1207
# BatchNorm running statistics: 3 layers * 14 channels * (mean + var) = 84 for every graph.
COUNTS = {"G0": 1181, "G1": 1176, "G2": 1207}


def _counts(model):
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    bn = sum(b.numel() for n, b in model.named_buffers()
             if n.endswith("running_mean") or n.endswith("running_var"))
    return trainable, bn


def _trained_bn(model, seed=0):
    """Run a few training batches so that BatchNorm statistics are not the defaults."""
    g = torch.Generator().manual_seed(seed)
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(torch.randn(16, 14, model.n_times, generator=g, dtype=torch.float64))
    return model.eval()


@pytest.mark.parametrize("graph", ["G0", "G1", "G2"])
def test_parameter_counts_and_shapes(graph):
    torch.manual_seed(0)
    model = HiSTN(graph=graph)
    assert _counts(model) == (COUNTS[graph], 84)
    out = model(torch.randn(3, 14, 128))
    assert out.shape == (3, 5) and out.dtype == torch.float32
    assert model.config == dict(n_channels=14, n_times=128, n_outputs=5, graph=graph,
                                dropout=0.5)
    assert f"graph={graph!r}" in repr(model) and "ChebGraphFilter" in repr(model)
    assert len(model.graph_data) == model.graph.n_regions
    small = HiSTN(n_times=64, n_outputs=3, graph=graph, dropout=0.2)
    assert small(torch.randn(2, 14, 64)).shape == (2, 3)


def _bn(bn, v):  # v (b, T, C), eval-mode BatchNorm written out
    return (v - bn.running_mean) / torch.sqrt(bn.running_var + bn.eps) * bn.weight + bn.bias


def _reference_forward(model, x):
    """histn-spec §2 written literally, time-first (b, T, C), one region at a time."""
    t = model.temporal
    xp = F.pad(x, (31, 32))  # "same": 31 before, 32 after
    win = xp.unfold(-1, 64, 1)  # (b, C, T, 64)
    conv = torch.einsum("bctj,fj->bfct", win, t.kernels)  # k_f * x_c for every filter
    y = torch.einsum("bfct,fc->btc", conv, t.mixing)
    h = F.elu(_bn(model.bn1, y))
    w5 = model.electrode.weight
    h = sum(h[:, j:j + 124, :] * w5[:, j] for j in range(5))
    h = F.elu(_bn(model.bn2, h))
    H = 0.5 * (h[:, 0::2, :] + h[:, 1::2, :])  # (b, 62, 14)
    groups = model.graph.region_indices()
    sep = model.separable
    pre_a = torch.zeros_like(H)
    for r, S in enumerate(groups):
        cheb = model.node_cheb[r]
        P = sum(w * T for w, T in zip(cheb.weight, cheb.basis, strict=True))
        M = H[:, :, S] @ P
        Mp = F.pad(M.transpose(1, 2), (2, 2)).transpose(1, 2)
        dw = sep.depthwise[S]
        M = sum(Mp[:, j:j + 62, :] * dw[:, j] for j in range(5))
        pre_a[:, :, S] = M @ sep.pointwise[r]
    A = F.elu(_bn(model.bn3, pre_a))
    N = H + A

    def fuse(fusion, X):
        zs = []
        for r, S in enumerate(groups):
            m = X[:, :, S].mean(1)
            alpha = torch.softmax(m @ fusion.weight[r] + fusion.bias[S], -1)
            zs.append((X[:, :, S] * alpha[:, None, :]).sum(-1))
        return torch.stack(zs, -1)

    def collapse(col, Y):
        beta = torch.softmax(Y.mean(1) @ col.linear.weight.T + col.linear.bias, -1)
        return (Y * beta[:, None, :]).sum(-1, keepdim=True)

    Z, Z_lat = fuse(model.fusion_h, H), fuse(model.fusion_a, A)
    rc = model.region_cheb
    P_R = sum(w * T for w, T in zip(rc.weight, rc.basis, strict=True))
    R = Z @ P_R + Z_lat
    g = collapse(model.collapse_z, Z) + collapse(model.collapse_lat, Z_lat)
    feats = torch.cat([N.mean(1), R.mean(1), g.mean(1)], -1)
    return model.classifier(feats)


@pytest.mark.parametrize("graph", ["G0", "G1", "G2"])
def test_matches_literal_reference(graph):
    torch.manual_seed(1)
    model = _trained_bn(HiSTN(graph=graph).double())
    x = torch.randn(5, 14, 128, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(model(x), _reference_forward(model, x), rtol=1e-9,
                                   atol=1e-10)


def test_batched_equals_per_sample_in_eval():
    torch.manual_seed(2)
    model = _trained_bn(HiSTN().double()).float()
    x = torch.randn(9, 14, 128)
    with torch.no_grad():
        batched = model(x)
        single = torch.cat([model(x[i:i + 1]) for i in range(9)])
    torch.testing.assert_close(batched, single, rtol=1e-5, atol=1e-5)
    assert torch.isfinite(batched).all()


def test_inference_memo_follows_parameter_updates():
    # without autograd the weight-derived matrices are memoised; every way a weight can
    # change (optimiser step, constraints, load_state_dict, .to) must show in the output
    torch.manual_seed(3)
    model = _trained_bn(HiSTN().double())
    x = torch.randn(4, 14, 128, dtype=torch.float64)
    with torch.no_grad():
        model(x)  # fills the memo
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
        model.apply_constraints()
        torch.testing.assert_close(model(x), _reference_forward(model, x), rtol=1e-9,
                                   atol=1e-10)
    other = _trained_bn(HiSTN().double())
    with torch.inference_mode():
        model.load_state_dict(other.state_dict())
        torch.testing.assert_close(model(x), _reference_forward(other, x), rtol=1e-9,
                                   atol=1e-10)
    # grad enabled: no memo, gradients reach every weight-derived matrix
    model.train()
    model(x).sum().backward()
    assert model.temporal.mixing.grad.abs().sum() > 0
    assert all(f.weight.grad.abs().sum() > 0 for f in model.node_cheb)
    with torch.no_grad():
        model.float()
        torch.testing.assert_close(model.eval()(x.float()),
                                   _reference_forward(model, x.float()), rtol=1e-4, atol=1e-5)


def _np_same_conv(x, h):
    """'same' cross-correlation of each channel with its kernel, 31 before / 32 after."""
    out = np.empty_like(x)
    for b in range(x.shape[0]):
        for c in range(x.shape[1]):
            out[b, c] = np.correlate(np.pad(x[b, c], (31, 32)), h[c], mode="valid")
    return out


def test_fused_temporal_head_equals_literal_outputs_and_gradients():
    torch.manual_seed(3)
    layer = FusedTemporalConv().double()
    x = torch.randn(6, 14, 128, dtype=torch.float64, requires_grad=True)
    params = [x, layer.kernels, layer.mixing]
    fused = layer(x)
    literal = layer.forward_literal(x)
    torch.testing.assert_close(fused, literal, rtol=1e-12, atol=1e-12)
    # independent numpy oracle of the fused kernel
    h = (layer.mixing.T @ layer.kernels).detach().numpy()
    np.testing.assert_allclose(fused.detach().numpy(), _np_same_conv(x.detach().numpy(), h),
                               atol=1e-12)
    with torch.no_grad():  # the small-batch inference path
        torch.testing.assert_close(layer(x[:2]), literal[:2], rtol=1e-12, atol=1e-12)
    grad_out = torch.randn_like(fused)
    g_fused = torch.autograd.grad(fused, params, grad_out)
    g_literal = torch.autograd.grad(literal, params, grad_out)
    for a, b in zip(g_fused, g_literal, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-11)
    # other sizes and paddings, and float32
    for n_times, k in [(20, 5), (9, 12)]:
        small = FusedTemporalConv(n_channels=3, n_times=n_times, n_filters=2, kernel_size=k)
        xs = torch.randn(4, 3, n_times, requires_grad=True)
        ys, yl = small(xs), small.forward_literal(xs)
        torch.testing.assert_close(ys, yl, rtol=1e-5, atol=1e-5)
        gs = torch.autograd.grad(ys.square().sum(), [xs, small.kernels, small.mixing])
        gl = torch.autograd.grad(yl.square().sum(), [xs, small.kernels, small.mixing])
        for a, b in zip(gs, gl, strict=True):
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)
    assert "impl='banded'" in repr(layer)


def test_whole_model_gradients_fused_vs_literal():
    torch.manual_seed(4)
    model = HiSTN(dropout=0.0).double().train()
    x = torch.randn(8, 14, 128, dtype=torch.float64)
    y = torch.randint(0, 5, (8,))
    params = [p for p in model.parameters() if p.requires_grad]
    grads = {}
    for impl in ("banded", "literal"):
        model.temporal.impl = impl
        loss = F.cross_entropy(model(x), y)
        grads[impl] = torch.autograd.grad(loss, params)
    for a, b in zip(grads["banded"], grads["literal"], strict=True):
        torch.testing.assert_close(a, b, rtol=1e-8, atol=1e-10)


def test_apply_constraints():
    torch.manual_seed(5)
    model = HiSTN()
    with torch.no_grad():
        model.temporal.mixing.normal_(0, 3)
        model.electrode.weight.normal_(0, 2)
        model.electrode.weight[0] = torch.tensor([0.1, 0.2, 0.3, 0.1, 0.2])  # norm < 1
        for w in model.separable.pointwise:
            w.normal_(0, 3)
    mixing = model.temporal.mixing.detach().clone()
    taps = model.electrode.weight.detach().clone()
    model.apply_constraints()
    assert model.temporal.mixing.abs().max() <= 1.0
    torch.testing.assert_close(model.temporal.mixing, mixing.clamp(-1, 1))
    norms = taps.norm(dim=1, keepdim=True)
    torch.testing.assert_close(model.electrode.weight, taps / norms.clamp_min(1.0))
    assert model.electrode.weight.norm(dim=1).max() <= 1.0 + 1e-6
    assert all(w.abs().max() <= 1.0 for w in model.separable.pointwise)
    # an optimiser step then the constraints, as the trainer does
    opt = torch.optim.Adam(model.parameters(), lr=10.0)
    F.cross_entropy(model(torch.randn(4, 14, 128)), torch.tensor([0, 1, 2, 3])).backward()
    opt.step()
    model.apply_constraints()
    assert model.temporal.mixing.abs().max() <= 1.0
    assert model.electrode.weight.norm(dim=1).max() <= 1.0 + 1e-6


def test_freeze_first_temporal_conv():
    torch.manual_seed(6)
    model = HiSTN()
    assert model.freeze_first_temporal_conv() is model
    assert not model.temporal.kernels.requires_grad and model.temporal.mixing.requires_grad
    assert _counts(model)[0] == 1181 - 512
    kernels = model.temporal.kernels.detach().clone()
    mixing = model.temporal.mixing.detach().clone()
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=0.1)
    F.cross_entropy(model(torch.randn(4, 14, 128)), torch.tensor([0, 1, 2, 3])).backward()
    assert model.temporal.kernels.grad is None
    opt.step()
    assert torch.equal(model.temporal.kernels, kernels)
    assert not torch.equal(model.temporal.mixing, mixing)
    model.freeze_first_temporal_conv(False)
    assert model.temporal.kernels.requires_grad


def test_checkpoint_round_trip(tmp_path):
    torch.manual_seed(7)
    model = _trained_bn(build_model("histn", graph="G1", dropout=0.2).double()).float()
    path = tmp_path / "sub" / "model.pt"
    extra = {"epoch": 3, "val_loss": 0.25, "classes": [0, 1, 2], "cm": torch.eye(2)}
    save_checkpoint(path, model, extra=extra)
    payload = torch.load(path, weights_only=True)  # plain dicts and tensors only
    assert payload["ch_names"] == list(model.ch_names)
    loaded, got_extra = load_checkpoint(path)
    assert isinstance(loaded, MODELS["histn"]) and not loaded.training
    assert loaded.config == model.config and loaded.graph.name == "G1"
    assert got_extra["epoch"] == 3 and torch.equal(got_extra["cm"], torch.eye(2))
    for (k, a), (k2, b) in zip(model.state_dict().items(), loaded.state_dict().items(),
                               strict=True):
        assert k == k2 and torch.equal(a, b)
    x = torch.randn(3, 14, 128)
    with torch.no_grad():
        assert torch.equal(model.eval()(x), loaded(x))


def test_checkpoint_errors(tmp_path):
    model = HiSTN()
    with pytest.raises(DataError, match="checkpoint not found"):
        load_checkpoint(tmp_path / "missing.pt")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(DataError, match="could not be read"):
        load_checkpoint(bad)
    other = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(2)}, other)
    with pytest.raises(DataError, match="is not a physioemo checkpoint"):
        load_checkpoint(other)
    with pytest.raises(ParameterError, match=r"extra\['scores'\] is a ndarray"):
        save_checkpoint(tmp_path / "x.pt", model, extra={"scores": np.zeros(3)})
    assert not (tmp_path / "x.pt").exists()


def test_bad_arguments():
    with pytest.raises(ParameterError, match="n_channels=16 does not match graph G0"):
        HiSTN(n_channels=16)
    with pytest.raises(ParameterError, match="graph='G9' is not a valid option"):
        HiSTN(graph="G9")
    with pytest.raises(ParameterError, match=r"dropout=1.0 is out of range"):
        HiSTN(dropout=1.0)
    with pytest.raises(ParameterError, match=r"input must have shape \(batch, 14, 128\)"):
        HiSTN()(torch.randn(2, 128, 14))
    with pytest.raises(ParameterError, match="name='eegnet' is not a valid option"):
        build_model("eegnet")


def test_reset_parameters_reinitialises_with_the_layers_own_init():
    torch.manual_seed(8)
    model = _trained_bn(HiSTN().double())
    model.reset_parameters()
    assert torch.equal(model.bn1.running_mean, torch.zeros(14, dtype=torch.float64))
    # GlobalCollapse uses Glorot-uniform (bound sqrt(6 / 8) for 4 -> 4) and zero bias
    lin = model.collapse_z.linear
    assert lin.weight.abs().max() <= np.sqrt(6 / 8) and torch.equal(lin.bias, torch.zeros(4,
                                                                     dtype=torch.float64))
    assert model.node_cheb[0].weight.abs().max() <= 1.0
