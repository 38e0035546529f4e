import numpy as np
import pytest
import torch
import torch.nn.functional as F

from physioemo.exceptions import ParameterError
from physioemo.training import losses as L


def test_gaussian_targets_spec_values():
    q = L.gaussian_targets([2, 0, 4]).numpy()
    # histn-spec §3
    np.testing.assert_allclose(q[0], [0.000264, 0.106451, 0.786571, 0.106451, 0.000264],
                               atol=5e-7)
    np.testing.assert_allclose(q[1], [0.880537, 0.119168, 0.000295, 0, 0], atol=5e-7)
    np.testing.assert_allclose(q[2], q[1][::-1], atol=1e-7)
    # independent closed form
    k = np.arange(5)
    for sigma in (0.3, 0.5, 1.5):
        for y in range(5):
            e = np.exp(-(k - y) ** 2 / (2 * sigma**2))
            np.testing.assert_allclose(L.gaussian_targets([y], sigma=sigma).numpy()[0],
                                       e / e.sum(), rtol=1e-6, atol=1e-9)
    assert L.gaussian_targets(torch.tensor([1, 3]), n_classes=7).shape == (2, 7)


def test_onehot_uniform_make_targets():
    y = np.array([0, 3, 4, 1])
    np.testing.assert_array_equal(L.onehot_targets(y).numpy(), np.eye(5)[y])
    np.testing.assert_allclose(L.uniform_targets(y, epsilon=0.2).numpy(),
                               0.8 * np.eye(5)[y] + 0.04, rtol=1e-6)
    for name, fn in [("gaussian", L.gaussian_targets), ("onehot", L.onehot_targets),
                     ("uniform", L.uniform_targets)]:
        assert torch.equal(L.make_targets(y, smoothing=name), fn(y))
    assert torch.equal(L.make_targets(y, "gaussian", sigma=0.8),
                       L.gaussian_targets(y, sigma=0.8))
    with pytest.raises(ParameterError, match="smoothing='laplace' is not a valid option"):
        L.make_targets(y, smoothing="laplace")
    with pytest.raises(ParameterError, match=r"y must lie in 0\.\.4"):
        L.gaussian_targets([5])
    with pytest.raises(ParameterError, match="sigma=0.0 is out of range"):
        L.gaussian_targets([1], sigma=0.0)


def test_soft_cross_entropy_matches_torch():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(32, 5, generator=g)
    y = torch.randint(0, 5, (32,), generator=g)
    for eps in (0.0, 0.1, 0.3):
        ours = L.soft_cross_entropy(logits, L.uniform_targets(y, epsilon=eps))
        ref = F.cross_entropy(logits, y, label_smoothing=eps)
        assert ours.item() == pytest.approx(ref.item(), rel=1e-6)
    # per-sample weights: sum(w * l) / n (Keras sample_weight), not sum(w * l) / sum(w)
    w = torch.rand(32, generator=g) + 0.5
    per = F.cross_entropy(logits, y, reduction="none")
    got = L.soft_cross_entropy(logits, L.onehot_targets(y), weight=w)
    assert got.item() == pytest.approx((w * per).sum().item() / 32, rel=1e-6)
    # gradient equals softmax - q
    lg = logits.clone().requires_grad_(True)
    q = L.gaussian_targets(y)
    L.soft_cross_entropy(lg, q).backward()
    torch.testing.assert_close(lg.grad, (torch.softmax(logits, 1) - q) / 32)
    with pytest.raises(ParameterError, match="must both have shape"):
        L.soft_cross_entropy(logits, q[:, :4])


def test_class_weights():
    y = np.array([0, 0, 0, 0, 2, 2, 4])
    w = L.class_weights(y, 5).numpy()
    np.testing.assert_allclose(w, [1, 1, 1, 1, 2, 2, 4])
    assert L.class_weights(torch.tensor([1, 1]), 5).tolist() == [1.0, 1.0]
