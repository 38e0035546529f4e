import numpy as np
import pytest
import torch

from physioemo.exceptions import ParameterError
from physioemo.models import graphs
from physioemo.models.graphs import G0, G1, G2, GRAPHS


def _np_basis(n, edges, K):
    """Independent numpy Chebyshev basis from a plain edge list."""
    A = np.zeros((n, n))
    for i, j in edges:
        A[i, j] = A[j, i] = 1
    Lap = np.diag(A.sum(1)) - A
    lam = np.abs(np.linalg.eigvals(Lap)).max()
    Lt = 2 * Lap / lam - np.eye(n)
    T = [np.eye(n), Lt]
    while len(T) < K + 1:
        T.append(2 * Lt @ T[-1] - T[-2])
    return np.stack(T[:K + 1]), lam


def test_g0_structure_and_edges():
    idx = G0.region_indices()
    assert [i.tolist() for i in idx] == [[0, 1, 2, 3], [4, 5, 6], [7, 8, 9], [10, 11, 12, 13]]
    for g in GRAPHS.values():  # every graph partitions the 14 channels
        assert sorted(np.concatenate(g.region_indices()).tolist()) == list(range(14))
    data = graphs.region_data("G0")
    fl = data[0]
    assert fl.num_nodes == 4 and fl.node_names == ["AF3", "F7", "F3", "FC5"]
    got = {tuple(sorted(p)) for p in fl.edge_index.T.tolist()}
    # AF3-F3, F7-F3, F7-FC5, F3-FC5
    assert got == {(0, 2), (1, 2), (1, 3), (2, 3)}
    assert fl.edge_index.shape == (2, 8)  # both directions
    fr = data[3]  # FC6, F4, F8, AF4: AF4-F4, F8-F4, F8-FC6, F4-FC6
    assert {tuple(sorted(p)) for p in fr.edge_index.T.tolist()} == \
        {(1, 3), (1, 2), (0, 2), (0, 1)}
    ring = graphs.region_graph_data(G0)
    assert {tuple(sorted(p)) for p in ring.edge_index.T.tolist()} == \
        {(0, 1), (1, 2), (2, 3), (0, 3)}
    assert [r.K for r in G1.regions] == [1, 2, 1, 2, 1] and G1.region_K == 2
    assert [r.K for r in G2.regions] == [3, 3, 3] and G2.region_K == 1
    assert G2.regions[2].channels == ("T8", "FC6", "F4", "F8", "AF4")


@pytest.mark.parametrize("name", ["G0", "G1", "G2"])
def test_chebyshev_basis_against_numpy(name):
    g = GRAPHS[name]
    datas = graphs.region_data(g) + [graphs.region_graph_data(g)]
    specs = [(r.channels, r.edges, r.K) for r in g.regions] + \
        [(g.region_names, g.region_edges, g.region_K)]
    for data, (nodes, edges, K) in zip(datas, specs, strict=True):
        pos = {n: i for i, n in enumerate(nodes)}
        ref, _ = _np_basis(len(nodes), [(pos[a], pos[b]) for a, b in edges], K)
        got = graphs.chebyshev_basis(data, dtype=torch.float64).numpy()
        np.testing.assert_allclose(got, ref, atol=1e-12)


def test_lambda_max():
    def lam(data):
        return torch.linalg.eigvalsh(graphs.laplacian(data)).abs().max().item()

    fl, pl, pr, fr = graphs.region_data(G0)
    assert lam(fl) == pytest.approx(4) and lam(fr) == pytest.approx(4)
    assert lam(pl) == pytest.approx(3) and lam(pr) == pytest.approx(3)
    assert lam(graphs.region_graph_data(G0)) == pytest.approx(4)
    # G1: triangle 3, 3-path 3, single edge 2; 5-cycle 2 - 2 cos(4 pi / 5)
    assert [round(lam(d), 6) for d in graphs.region_data(G1)] == [3, 3, 2, 3, 3]
    assert lam(graphs.region_graph_data(G1)) == pytest.approx(2 - 2 * np.cos(4 * np.pi / 5))


def test_bad_graph():
    with pytest.raises(ParameterError, match="graph='G3' is not a valid option"):
        graphs.get_graph("G3")
    with pytest.raises(ParameterError, match="not in ch_names"):
        G0.region_indices(["AF3", "F7"])
