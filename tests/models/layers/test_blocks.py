import torch

from physioemo.models.layers._blocks import block_diag_scatter, block_flat_index, region_index


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
