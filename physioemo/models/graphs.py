"""The HiSTN electrode graphs G0, G1 and G2 as plain data, and their PyG / Chebyshev forms.

A graph is a partition of the 14 DREAMER electrodes into regions (each with its own
within-region edges and Chebyshev order ``K``) plus a graph over the regions. The graphs
are defined once here, as names; :func:`region_data`, :func:`region_graph_data` turn them
into :class:`torch_geometric.data.Data` objects and :func:`chebyshev_basis` into the
polynomial basis ``T_0 .. T_K`` of the scaled Laplacian used by
:class:`~physioemo.models.layers.ChebGraphFilter`.

References
----------
.. [1] Kuang, Song, Michoski (2024). Emotion Classification from Multi-Channel EEG Signals
   Using HiSTN: A Hierarchical Graph-based Spatial-Temporal Approach. arXiv:2408.15255.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..datasets.dreamer import EEG_CHANNELS  # the one place for the channel order
from ..exceptions import ParameterError
from ..utils._checks import check_option


@dataclass(frozen=True)
class Region:
    """One electrode region: its channels (by name), edges and Chebyshev order.

    Parameters
    ----------
    name : str
        Short name, e.g. ``"FL"``.
    channels : tuple of str
        Electrode names, in the order they appear in :data:`EEG_CHANNELS`.
    edges : tuple of (str, str)
        Undirected, unweighted within-region edges (no self-loops).
    K : int
        Order of the Chebyshev filter on this region (``K + 1`` learnable weights).
    """

    name: str
    channels: tuple
    edges: tuple
    K: int


@dataclass(frozen=True)
class HierarchicalGraph:
    """Regions of electrodes plus the graph that links the regions.

    Parameters
    ----------
    name : str
        ``"G0"``, ``"G1"`` or ``"G2"``.
    regions : tuple of Region
        Partition of the electrodes.
    region_edges : tuple of (str, str)
        Undirected edges between region names.
    region_K : int
        Order of the Chebyshev filter on the region graph.
    """

    name: str
    regions: tuple
    region_edges: tuple
    region_K: int

    @property
    def n_regions(self):
        """Number of regions."""
        return len(self.regions)

    @property
    def region_names(self):
        """Region names, in order."""
        return tuple(r.name for r in self.regions)

    def region_indices(self, ch_names=EEG_CHANNELS):
        """Channel indices of each region.

        Parameters
        ----------
        ch_names : sequence of str
            The channel order of the data (defaults to DREAMER's).

        Returns
        -------
        indices : list of ndarray of int, one per region
        """
        ch_names = list(ch_names)
        out = []
        for region in self.regions:
            missing = [c for c in region.channels if c not in ch_names]
            if missing:
                raise ParameterError(
                    f"graph {self.name} region {region.name} needs channels {missing} which are "
                    f"not in ch_names={ch_names}; pass data with the DREAMER/Emotiv EPOC "
                    "channels.")
            out.append(np.array([ch_names.index(c) for c in region.channels], dtype=np.int64))
        return out


def _path(*names):
    return tuple(zip(names[:-1], names[1:], strict=True))


def _cycle(*names):
    return _path(*names) + ((names[-1], names[0]),)


def _complete(*names):
    return tuple((a, b) for i, a in enumerate(names) for b in names[i + 1:])


G0 = HierarchicalGraph(
    name="G0",
    regions=(
        Region("FL", ("AF3", "F7", "F3", "FC5"),
               (("AF3", "F3"), ("F7", "F3"), ("F7", "FC5"), ("F3", "FC5")), 2),
        Region("PL", ("T7", "P7", "O1"), _path("T7", "P7", "O1"), 2),
        Region("PR", ("O2", "P8", "T8"), _path("O2", "P8", "T8"), 2),
        Region("FR", ("FC6", "F4", "F8", "AF4"),
               (("AF4", "F4"), ("F8", "F4"), ("F8", "FC6"), ("F4", "FC6")), 2),
    ),
    region_edges=_cycle("FL", "PL", "PR", "FR"),
    region_K=2,
)

G1 = HierarchicalGraph(
    name="G1",
    regions=(
        Region("LF", ("AF3", "F7", "F3"), _complete("AF3", "F7", "F3"), 1),
        Region("LT", ("FC5", "T7", "P7"), _path("FC5", "T7", "P7"), 2),
        Region("O", ("O1", "O2"), (("O1", "O2"),), 1),
        Region("RT", ("P8", "T8", "FC6"), _path("P8", "T8", "FC6"), 2),
        Region("RF", ("F4", "F8", "AF4"), _complete("F4", "F8", "AF4"), 1),
    ),
    region_edges=_cycle("LF", "LT", "O", "RT", "RF"),
    region_K=2,
)

G2 = HierarchicalGraph(
    name="G2",
    regions=(
        Region("L", ("AF3", "F7", "F3", "FC5", "T7"),
               (("AF3", "F3"), ("F7", "F3"), ("F7", "FC5"), ("F3", "FC5"), ("FC5", "T7")), 3),
        Region("P", ("P7", "O1", "O2", "P8"), _path("P7", "O1", "O2", "P8"), 3),
        Region("R", ("T8", "FC6", "F4", "F8", "AF4"),
               (("AF4", "F4"), ("F8", "F4"), ("F8", "FC6"), ("F4", "FC6"), ("FC6", "T8")), 3),
    ),
    region_edges=_complete("L", "P", "R"),
    region_K=1,
)

#: The graphs by name (the ``--graph`` choices).
GRAPHS = {"G0": G0, "G1": G1, "G2": G2}


def get_graph(graph):
    """Return a :class:`HierarchicalGraph` from its name (or the graph itself)."""
    if isinstance(graph, HierarchicalGraph):
        return graph
    return GRAPHS[check_option("graph", graph, tuple(GRAPHS))]


def _edge_index(nodes, edges):
    """Directed (both ways) edge index, shape (2, 2 * n_edges), of named edges."""
    idx = {n: i for i, n in enumerate(nodes)}
    pairs = []
    for a, b in edges:
        if a == b or a not in idx or b not in idx:
            raise ParameterError(f"edge ({a!r}, {b!r}) must join two different nodes of "
                                 f"{list(nodes)}; fix the graph definition.")
        pairs += [(idx[a], idx[b]), (idx[b], idx[a])]
    return np.array(pairs, dtype=np.int64).T.reshape(2, -1)


def _to_data(nodes, edges, K, name):
    import torch
    from torch_geometric.data import Data

    edge_index = torch.as_tensor(_edge_index(nodes, edges))
    return Data(edge_index=edge_index, num_nodes=len(nodes), node_names=list(nodes),
                K=int(K), name=name)


def region_data(graph):
    """Within-region graphs as PyG objects.

    Parameters
    ----------
    graph : str | HierarchicalGraph
        ``"G0"``, ``"G1"``, ``"G2"`` or a graph.

    Returns
    -------
    data : list of torch_geometric.data.Data
        One per region, with ``edge_index`` (both directions), ``num_nodes``,
        ``node_names``, ``K`` and ``name``.
    """
    graph = get_graph(graph)
    return [_to_data(r.channels, r.edges, r.K, r.name) for r in graph.regions]


def region_graph_data(graph):
    """Return the graph over regions as a PyG object (nodes = regions, in order)."""
    graph = get_graph(graph)
    return _to_data(graph.region_names, graph.region_edges, graph.region_K,
                    f"{graph.name}-regions")


def laplacian(data):
    """Dense combinatorial Laplacian ``L = D - A`` of a PyG graph.

    Parameters
    ----------
    data : torch_geometric.data.Data
        Graph with ``edge_index`` and ``num_nodes``.

    Returns
    -------
    L : torch.Tensor, shape (n_nodes, n_nodes), float64
    """
    import torch
    from torch_geometric.utils import to_dense_adj

    adj = to_dense_adj(data.edge_index, max_num_nodes=data.num_nodes)[0].to(torch.float64)
    adj = (adj > 0).to(torch.float64)  # binary, whatever the multiplicity of an edge
    return torch.diag(adj.sum(1)) - adj


def chebyshev_basis(data, K=None, dtype=None):
    """Chebyshev polynomials ``T_0 .. T_K`` of the scaled Laplacian of a graph.

    ``L~ = 2 L / lambda_max - I`` with ``lambda_max`` the largest absolute eigenvalue of
    ``L = D - A``; ``T_0 = I``, ``T_1 = L~``, ``T_k = 2 L~ T_{k-1} - T_{k-2}``.

    Parameters
    ----------
    data : torch_geometric.data.Data
        The graph (needs at least one edge).
    K : int | None
        Highest order; defaults to ``data.K``.
    dtype : torch.dtype | None
        Output dtype (default float32); the maths runs in float64.

    Returns
    -------
    basis : torch.Tensor, shape (K + 1, n_nodes, n_nodes)
    """
    import torch

    K = int(data.K if K is None else K)
    if K < 0:
        raise ParameterError(f"K={K} must be >= 0; pass a non-negative Chebyshev order.")
    L = laplacian(data)
    lambda_max = torch.linalg.eigvalsh(L).abs().max()
    if lambda_max <= 0:
        raise ParameterError(
            f"graph {getattr(data, 'name', '')!r} has no edges (lambda_max = 0), so its scaled "
            "Laplacian is undefined; give every region at least one edge.")
    eye = torch.eye(L.shape[0], dtype=torch.float64)
    L_tilde = 2.0 * L / lambda_max - eye
    T = [eye, L_tilde]
    for _ in range(2, K + 1):
        T.append(2.0 * L_tilde @ T[-1] - T[-2])
    return torch.stack(T[:K + 1]).to(dtype or torch.float32)
