"""HiSTN: hierarchical spatial-temporal graph network for EEG emotion recognition."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..exceptions import ParameterError
from ..utils._checks import check_number
from .graphs import EEG_CHANNELS, chebyshev_basis, get_graph, region_data, region_graph_data
from .layers import (
    ChebGraphFilter,
    ElectrodeConv,
    FusedTemporalConv,
    GlobalCollapse,
    RegionAttentionFusion,
    RegionSeparableConv,
    _fused,
)
from .layers._blocks import block_diag_scatter, block_flat_index, memo_no_grad

#: Keras ``BatchNormalization`` defaults in PyTorch terms (Keras momentum 0.99).
BN_MOMENTUM = 0.01
BN_EPS = 1e-3


def _bn(n):
    return nn.BatchNorm1d(n, eps=BN_EPS, momentum=BN_MOMENTUM)


def _dropout_mask(shape, p, training, like):
    """Inverted-dropout multipliers of ``shape`` (dtype and device of ``like``); None off.

    One ``torch.rand`` draw per dropout layer, in the same order on the fused kernels and
    on PyTorch operators, so one seed gives both paths the same masks.
    """
    if not training or p == 0.0:
        return None
    return _fused.dropout_mask(shape, p, dtype=like.dtype, device=like.device)


def _dropout(x, p, training):
    """Inverted dropout from a uniform draw (2-3x faster than ``F.dropout`` on CPU)."""
    mask = _dropout_mask(x.shape, p, training, x)
    return x if mask is None else x * mask


def _pool2(x):
    """Average pooling by 2 over the last axis (a trailing odd sample is dropped)."""
    n = x.shape[-1] // 2
    return x[..., :2 * n].unflatten(-1, (n, 2)).mean(-1)


class HiSTN(nn.Module):
    """Hierarchical graph-based spatial-temporal network (HiSTN) of Kuang et al. [1]_.

    A temporal head (8 shared 64-tap kernels mixed per electrode, BatchNorm, ELU, a 5-tap
    per-electrode filter, BatchNorm, ELU, average pooling by 2, dropout) gives ``H``; one
    hierarchy block then filters it on three levels of a region graph: nodes (Chebyshev
    filter per region + region-wise separable convolution, residual ``N = H + A``), regions
    (attention fusion and a Chebyshev filter on the region graph, ``R``) and the whole head
    (attention collapse, ``g``). The time-means of ``(N, R, g)`` feed a linear classifier.
    With graph G0 the model has 1,181 trainable parameters and 84 BatchNorm running
    statistics, as the reference implementation.

    The first two temporal layers are computed as one fused per-electrode kernel applied as
    a banded matrix product (same outputs and gradients as the literal layers, several
    times faster on CPU; see :class:`~physioemo.models.layers.FusedTemporalConv`). Since
    the head only sees time-means and everything after the region fusion is linear in time
    with weights computed from time-means, the region and global levels run on the
    ``(batch, n_channels)`` time-means of ``H`` and ``A`` (identical results, fewer passes).
    For training, :class:`~physioemo.training.trainer.Trainer` uses ``torch.optim.Adam(...,
    fused=True)``: one kernel updates all of these small tensors instead of one per tensor.

    Parameters
    ----------
    n_channels : int
        Number of EEG channels; must be the 14 DREAMER (Emotiv EPOC) channels in
        :data:`~physioemo.models.graphs.EEG_CHANNELS` order.
    n_times : int
        Window length in samples (128 = 1 s at 128 Hz in the paper).
    n_outputs : int
        Number of classes (5 for the 1..5 self-reports).
    graph : {"G0", "G1", "G2"}
        Region graph (G0 is the paper's; G1/G2 are its ablations).
    dropout : float
        Dropout probability (0.5 subject-dependent, 0.2 subject-independent in the paper).

    Attributes
    ----------
    config : dict
        The constructor arguments (saved in checkpoints).
    ch_names : tuple of str
        Expected channel order.

    Notes
    -----
    Input is ``(batch, n_channels, n_times)``; the output is **logits** of shape
    ``(batch, n_outputs)``; apply ``torch.softmax(logits, -1)`` for class scores. Call
    :meth:`apply_constraints` after every optimiser step (the reference's Keras
    max-norm constraints). BatchNorm uses Keras' defaults (momentum 0.99 in Keras = 0.01 in
    PyTorch, eps 1e-3); PyTorch tracks the unbiased batch variance where Keras tracks the
    biased one, a difference of a factor ``n / (n - 1)`` with ``n = batch * n_times``.

    References
    ----------
    .. [1] Kuang, Song, Michoski (2024). Emotion Classification from Multi-Channel EEG
       Signals Using HiSTN: A Hierarchical Graph-based Spatial-Temporal Approach.
       arXiv:2408.15255.
    """

    #: Run the model in the fused Numba kernels of
    #: :mod:`physioemo.models.layers._fused` on CPU float32 input (unless
    #: ``PHYSIOEMO_NATIVE=0``); set to False on an instance to use the PyTorch operators.
    native = True

    def __init__(self, n_channels=14, n_times=128, n_outputs=5, graph="G0", dropout=0.5):
        super().__init__()
        self.config = dict(n_channels=n_channels, n_times=n_times, n_outputs=n_outputs,
                           graph=graph, dropout=dropout)
        self.n_channels = check_number("n_channels", n_channels, low=1, integer=True)
        self.n_times = check_number(
            "n_times", n_times, low=12, integer=True,
            hint="use windows of at least 12 samples (128 = 1 s at 128 Hz in the paper)")
        self.n_outputs = check_number("n_outputs", n_outputs, low=2, integer=True)
        self.dropout = check_number("dropout", dropout, low=0.0, high=1.0,
                                    high_inclusive=False)
        self.graph = get_graph(graph)
        self.ch_names = tuple(EEG_CHANNELS)
        if self.n_channels != len(self.ch_names):
            raise ParameterError(
                f"n_channels={n_channels} does not match graph {self.graph.name}, which is "
                f"defined on the {len(self.ch_names)} DREAMER channels {list(self.ch_names)}; "
                f"pass n_channels={len(self.ch_names)} with data in that order.")
        groups = [torch.as_tensor(g) for g in self.graph.region_indices(self.ch_names)]
        self.graph_data = region_data(self.graph)  # PyG objects, kept for inspection
        self.region_graph_data = region_graph_data(self.graph)
        n_ch, n_reg = self.n_channels, self.graph.n_regions

        # Part I: temporal head
        self.temporal = FusedTemporalConv(n_ch, self.n_times, n_filters=8, kernel_size=64)
        self.bn1 = _bn(n_ch)
        self.electrode = ElectrodeConv(n_ch, kernel_size=5)
        self.bn2 = _bn(n_ch)
        # Part II: one hierarchy block
        self.node_cheb = nn.ModuleList(
            [ChebGraphFilter(chebyshev_basis(d)) for d in self.graph_data])
        self.register_buffer("_node_flat", block_flat_index(
            torch.cat(groups), [len(g) for g in groups]), persistent=False)
        # entries of the node filter and region pointwise matrices that are parameters
        # (both block-diagonal on the same regions): the fused kernel's gradient pattern
        self.register_buffer("_block_pattern", torch.zeros(n_ch * n_ch, dtype=torch.bool)
                             .index_fill_(0, self._node_flat, True).view(n_ch, n_ch),
                             persistent=False)
        region_of = torch.empty(n_ch, dtype=torch.int32)
        for r, g in enumerate(groups):
            region_of[g] = r
        self.register_buffer("_region_of", region_of, persistent=False)
        self.separable = RegionSeparableConv(groups, kernel_size=5)
        self.bn3 = _bn(n_ch)
        self.fusion_h = RegionAttentionFusion(groups)
        self.fusion_a = RegionAttentionFusion(groups)
        self.region_cheb = ChebGraphFilter(chebyshev_basis(self.region_graph_data))
        self.collapse_z = GlobalCollapse(n_reg)
        self.collapse_lat = GlobalCollapse(n_reg)
        # Part III: head
        self.classifier = nn.Linear(n_ch + n_reg + 1, self.n_outputs)
        self.reset_parameters()

    def reset_parameters(self):
        """Re-initialise every layer (BatchNorm statistics included)."""
        # direct children only: each layer re-initialises its own sub-modules its way
        for child in self.children():
            for m in child if isinstance(child, nn.ModuleList) else [child]:
                m.reset_parameters()
        nn.init.xavier_uniform_(self.classifier.weight)
        nn.init.zeros_(self.classifier.bias)

    @memo_no_grad
    def node_filter_matrix(self):
        """Block-diagonal matrix of the per-region Chebyshev filters, (n_channels, n_channels)."""
        return block_diag_scatter([f.filter_matrix() for f in self.node_cheb],
                                  self._node_flat, self.n_channels)

    def _native_ok(self, x):
        tc = self.temporal
        return (self.native and tc.impl == "banded"
                and _fused.supports(x, self.electrode.kernel_size, tc.kernel_size))

    def _node_means(self, x, native):
        """Time-means of the node level's ``H`` and ``A``, each (batch, n_channels)."""
        if native:
            tc, sep = self.temporal, self.separable
            B, C, T = x.shape
            n_pooled = (T - self.electrode.kernel_size + 1) // 2
            mask = _dropout_mask((B, C, n_pooled), self.dropout, self.training, x)
            h = _fused.head(x, self.bn1, self.electrode.weight, self.bn2, mask=mask,
                            kernels=tc.fused_kernels(), pad_before=tc.pad_before)
            a_mean, h_mean = _fused.block(h, self.node_filter_matrix(), sep.depthwise,
                                          sep.pad_before, sep.pointwise_matrix(), self.bn3,
                                          self._block_pattern)
            return h_mean, a_mean
        # Part I
        h = F.elu(self.bn1(self.temporal(x)))
        h = F.elu(self.bn2(self.electrode(h)))
        h = _dropout(_pool2(h), self.dropout, self.training)
        # Part II: node level
        m = self.node_filter_matrix().transpose(0, 1) @ h
        a = F.elu(self.bn3(self.separable(m)))
        return h.mean(-1), a.mean(-1)

    def features(self, x):
        """Return the 19 (G0) time-averaged features before the classifier's dropout.

        Parameters
        ----------
        x : torch.Tensor, shape (batch, n_channels, n_times)

        Returns
        -------
        features : torch.Tensor, shape (batch, n_channels + n_regions + 1)
        """
        h_mean, a_mean = self._node_means(x, self._native_ok(x))
        # Past the node level every operator is linear in time with weights computed from
        # time-means, and the head only sees time-means, so the region and global levels
        # run on the (batch, channels) means: mean(N) = mean(H) + mean(A),
        # mean(Z) = F_a.forward_mean(mean(H)), ... (identical results, a third of the cost).
        n_mean = h_mean + a_mean
        # region level: R = Z P_R + Z_lat
        z_mean = self.fusion_h.forward_mean(h_mean)
        z_lat_mean = self.fusion_a.forward_mean(a_mean)
        r_mean = z_mean @ self.region_cheb.filter_matrix() + z_lat_mean
        # global level: g = G_a(Z) + G_b(Z_lat)
        g_mean = self.collapse_z.forward_mean(z_mean) + self.collapse_lat.forward_mean(z_lat_mean)
        return torch.cat([n_mean, r_mean, g_mean], dim=-1)

    def forward(self, x):
        """Classify windows.

        Parameters
        ----------
        x : torch.Tensor, shape (batch, n_channels, n_times)
            EEG windows, channels in :attr:`ch_names` order.

        Returns
        -------
        logits : torch.Tensor, shape (batch, n_outputs)
            Unnormalised class scores; ``softmax`` them for probabilities.
        """
        if x.ndim != 3 or x.shape[1] != self.n_channels or x.shape[2] != self.n_times:
            raise ParameterError(
                f"HiSTN input must have shape (batch, {self.n_channels}, {self.n_times}) "
                f"(batch, n_channels, n_times), got {tuple(x.shape)}; window the data to "
                f"{self.n_times} samples with channels on axis 1.")
        if self._native_ok(x):  # the same computation in three fused kernels
            h_mean, a_mean = self._node_means(x, True)
            n_feat = self.classifier.in_features
            mask = _dropout_mask((x.shape[0], n_feat), self.dropout, self.training, x)
            return _fused.tail(h_mean, a_mean, self._region_of, self.fusion_h,
                               self.fusion_a, self.region_cheb.filter_matrix(),
                               self.collapse_z, self.collapse_lat, self.classifier, mask)
        feats = _dropout(self.features(x), self.dropout, self.training)
        return self.classifier(feats)

    @torch.no_grad()
    def apply_constraints(self):
        """Enforce the reference's weight constraints in place; call after every step.

        ``|a[f, c]| <= 1`` for the temporal mixing, L2 norm <= 1 for each electrode's
        5-tap kernel, ``|w| <= 1`` for the region pointwise weights.
        """
        self.temporal.apply_constraints()
        self.electrode.apply_constraints()
        self.separable.apply_constraints()

    def freeze_first_temporal_conv(self, freeze=True):
        """Freeze (or unfreeze) the 8 shared temporal kernels only.

        Stage 2 of the subject-independent protocols fine-tunes everything else, the
        per-electrode mixing included. Build the optimiser after calling this (or filter
        on ``requires_grad``).

        Parameters
        ----------
        freeze : bool
            ``True`` to freeze, ``False`` to make them trainable again.

        Returns
        -------
        self : HiSTN
        """
        self.temporal.kernels.requires_grad_(not freeze)
        return self

    def extra_repr(self):  # noqa: D102 (documented by nn.Module)
        return (f"graph={self.graph.name!r}, n_channels={self.n_channels}, "
                f"n_times={self.n_times}, n_outputs={self.n_outputs}, dropout={self.dropout}")
