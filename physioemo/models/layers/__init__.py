"""HiSTN building blocks, one layer a file. Inputs are ``(batch, n_channels, n_times)``."""

from .cheb import ChebGraphFilter
from .collapse import GlobalCollapse
from .electrode import ElectrodeConv
from .fusion import RegionAttentionFusion
from .separable import RegionSeparableConv
from .temporal import FusedTemporalConv

__all__ = ["ChebGraphFilter", "ElectrodeConv", "FusedTemporalConv", "GlobalCollapse",
           "RegionAttentionFusion", "RegionSeparableConv"]
