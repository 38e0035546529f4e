import torch

from physioemo.models.layers import GlobalCollapse


def test_collapse_against_formula_and_mean_identity():
    torch.manual_seed(0)
    col = GlobalCollapse(4).double()
    with torch.no_grad():
        col.linear.bias.normal_()
    y = torch.randn(5, 4, 13, dtype=torch.float64)
    beta = torch.softmax(y.mean(-1) @ col.linear.weight.T + col.linear.bias, -1)
    expected = (beta[:, :, None] * y).sum(1, keepdim=True)
    torch.testing.assert_close(col(y), expected)
    torch.testing.assert_close(col.forward_mean(y.mean(-1)), expected.mean(-1))
