import torch

from physioemo.models.layers import RegionAttentionFusion


def test_fusion_against_loop_and_mean_identity():
    torch.manual_seed(0)
    groups = [[0, 1, 2], [3, 4], [5, 6, 7, 8]]
    fusion = RegionAttentionFusion(groups).double()
    with torch.no_grad():
        fusion.bias.normal_()
    x = torch.randn(3, 9, 11, dtype=torch.float64)
    z = fusion(x)
    for r, S in enumerate(groups):
        m = x[:, S].mean(-1)
        alpha = torch.softmax(m @ fusion.weight[r] + fusion.bias[S], -1)
        torch.testing.assert_close(z[:, r], (alpha[:, :, None] * x[:, S]).sum(1))
    torch.testing.assert_close(fusion.forward_mean(x.mean(-1)), z.mean(-1))
    assert "region_sizes=[3, 2, 4]" in repr(fusion)
