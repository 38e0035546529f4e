import pytest
import torch

from physioemo.models.layers._blocks import (
    block_diag_scatter,
    block_flat_index,
    region_index,
    softmax,
)


def test_block_diag_scatter_non_contiguous_regions():
    groups = [[4, 0], [1, 3, 2]]
    order, sizes = region_index(groups)
    blocks = [torch.arange(4.0).view(2, 2) + 1, torch.arange(9.0).view(3, 3) + 10]
    got = block_diag_scatter(blocks, block_flat_index(order, sizes), 5)
    expected = torch.zeros(5, 5)
    for g, b in zip(groups, blocks, strict=True):
        for a, i in enumerate(g):
            for c, j in enumerate(g):
                expected[i, j] = b[a, c]
    torch.testing.assert_close(got, expected)


@pytest.mark.parametrize("shape", [(7, 3), (5, 4, 14), (2, 1)])
def test_softmax_equals_torch_with_masked_entries(shape):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(*shape, generator=g, dtype=torch.float64) * 30  # large: needs the max shift
    x = x.masked_fill(torch.rand(*shape, generator=g) < 0.3, float("-inf"))
    x[..., 0] = 1.0  # every row keeps a finite entry
    x.requires_grad_()
    ours, ref = softmax(x), torch.softmax(x, -1)
    torch.testing.assert_close(ours, ref, rtol=1e-12, atol=1e-14)
    grad = torch.randn(*shape, generator=g, dtype=torch.float64)
    torch.testing.assert_close(torch.autograd.grad(ours, x, grad)[0],
                               torch.autograd.grad(ref, x, grad)[0], rtol=1e-12, atol=1e-14)
    finite = torch.randn(3, 4, generator=g, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(softmax, (finite,))
