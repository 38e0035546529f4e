import pytest
import torch
import torch.nn.functional as F

from physioemo.models.layers._taps import depthwise_taps


@pytest.mark.parametrize("shape, k, p0, p1", [((3, 4, 20), 5, 0, 0), ((3, 4, 20), 5, 2, 2),
                                              ((2, 3, 6), 7, 3, 3), ((4, 10), 3, 1, 0)])
def test_depthwise_taps_against_conv1d(shape, k, p0, p1):
    torch.manual_seed(0)
    n_ch, n_t = shape[-2], shape[-1]
    x = torch.randn(*shape, dtype=torch.float64, requires_grad=True)
    w = torch.randn(n_ch, k, dtype=torch.float64, requires_grad=True)
    ref = F.conv1d(F.pad(x, (p0, p1)).reshape(-1, n_ch, n_t + p0 + p1), w.unsqueeze(1),
                   groups=n_ch).reshape(shape[:-1] + (-1,))
    got = depthwise_taps(x, w, p0, p1)
    torch.testing.assert_close(got, ref, rtol=1e-12, atol=1e-12)
    g = torch.randn_like(ref)
    for a, b in zip(torch.autograd.grad(got, [x, w], g), torch.autograd.grad(ref, [x, w], g),
                    strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    with torch.no_grad():  # the inference path without the autograd Function
        torch.testing.assert_close(depthwise_taps(x, w, p0, p1), ref.detach())
