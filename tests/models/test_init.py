"""Initial weights follow Keras' defaults for the kernels as the reference builds them."""

import math

import numpy as np
import pytest
import torch

from physioemo.models import HiSTN
from physioemo.models.layers import FusedTemporalConv


def keras_glorot_bound(shape):
    """Bound of Keras' GlorotUniform for a kernel ``shape`` (its ``_compute_fans`` rule)."""
    if len(shape) == 1:
        fan_in = fan_out = shape[0]
    elif len(shape) == 2:
        fan_in, fan_out = shape
    else:
        receptive_field = math.prod(shape[:-2])
        fan_in, fan_out = shape[-2] * receptive_field, shape[-1] * receptive_field
    return math.sqrt(6.0 / (fan_in + fan_out))


# Region sizes and Chebyshev orders (node regions, region ring) from histn-spec §2.
GRAPHS = {"G0": ([4, 3, 3, 4], [2, 2, 2, 2], 2),
          "G1": ([3, 3, 2, 3, 3], [1, 2, 1, 2, 1], 2),
          "G2": ([5, 4, 5], [3, 3, 3], 1)}


def _keras_layers(model, sizes, node_k, region_k):
    """(name, weights, Keras kernel shape of the reference layer) for every weight tensor."""
    n_reg = len(sizes)
    out = [("Conv2D(8, (64, 1))", model.temporal.kernels, (64, 1, 1, 8)),
           # Permute -> (time, 8 filters, 14 electrodes); DepthwiseConv2D((1, 8)) over them
           ("DepthwiseConv2D((1, 8))", model.temporal.mixing, (1, 8, 14, 1)),
           ("DepthwiseConv2D((5, 1))", model.electrode.weight, (5, 1, 14, 1)),
           ("Dense(4) collapse", model.collapse_z.linear.weight, (n_reg, n_reg)),
           ("Dense(4) collapse latter", model.collapse_lat.linear.weight, (n_reg, n_reg)),
           ("Dense(5) head", model.classifier.weight, (14 + n_reg + 1, 5)),
           ("MessagePassing ring", model.region_cheb.weight, (region_k + 1,))]
    start = 0
    for r, n in enumerate(sizes):
        out += [(f"SeparableConv1D depthwise {r}", model.separable.depthwise[start:start + n],
                 (5, n, 1)),
                (f"SeparableConv1D pointwise {r}", model.separable.pointwise[r], (1, n, n)),
                (f"Dense({n}) fusion {r}", model.fusion_h.weight[r], (n, n)),
                (f"Dense({n}) fusion latter {r}", model.fusion_a.weight[r], (n, n)),
                (f"MessagePassing node {r}", model.node_cheb[r].weight, (node_k[r] + 1,))]
        start += n
    return out


@pytest.mark.parametrize("graph", sorted(GRAPHS))
def test_initial_weights_are_keras_glorot_uniform_with_keras_fans(graph):
    sizes, node_k, region_k = GRAPHS[graph]
    torch.manual_seed(0)
    model = HiSTN(graph=graph)
    n_draws = 150
    maxima, means = {}, {}
    for _ in range(n_draws):
        model.reset_parameters()
        for name, w, shape in _keras_layers(model, sizes, node_k, region_k):
            assert w.numel() == math.prod(shape), name
            a = w.detach().abs()
            maxima[name] = max(maxima.get(name, 0.0), float(a.max()))
            means[name] = means.get(name, 0.0) + float(a.mean()) / n_draws
    for name, _, shape in _keras_layers(model, sizes, node_k, region_k):
        bound = keras_glorot_bound(shape)
        # never beyond the bound, and over n_draws * numel uniform draws the largest is
        # within a fraction of a percent of it (a smaller bound would fail here)
        assert maxima[name] <= bound * (1 + 1e-6), (name, maxima[name], bound)
        assert maxima[name] >= 0.99 * bound, (name, maxima[name], bound)
        # uniform on [-b, b]: E|w| = b / 2
        assert means[name] == pytest.approx(bound / 2, rel=0.06), name


def test_mixing_bound_is_sqrt_6_over_120_and_cheb_bounds_follow_k():
    # the spec's DepthwiseConv2D((1, 8)) kernel over 14 electrodes: fans 112 and 8
    assert keras_glorot_bound((1, 8, 14, 1)) == pytest.approx(math.sqrt(6 / 120))
    torch.manual_seed(1)
    layer = FusedTemporalConv()
    w = []
    for _ in range(500):
        layer.reset_parameters()
        w.append(layer.mixing.detach().abs().max().item())
    assert math.sqrt(6 / 120) * 0.999 < max(w) <= math.sqrt(6 / 120) < 0.2237
    # Keras' 1-D fans are (K + 1, K + 1): U(-1, 1) only for K = 2
    assert keras_glorot_bound((3,)) == 1.0
    assert keras_glorot_bound((2,)) == pytest.approx(math.sqrt(1.5))


def test_biases_and_batchnorm_start_at_keras_defaults():
    model = HiSTN()
    for bias in (model.fusion_h.bias, model.fusion_a.bias, model.collapse_z.linear.bias,
                 model.collapse_lat.linear.bias, model.classifier.bias):
        assert torch.equal(bias, torch.zeros_like(bias))
    for bn in (model.bn1, model.bn2, model.bn3):
        np.testing.assert_array_equal(bn.weight.detach().numpy(), 1.0)
        np.testing.assert_array_equal(bn.bias.detach().numpy(), 0.0)
