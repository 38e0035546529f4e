"""Signal processing: filters and band features, offline and streaming.

Numba kernels are compiled (or loaded from cache) on first use, so importing this
package stays light.
"""

from .bands import FREQ_BANDS
from .filters import StreamingFilter, design_sos, filter_data, notch_filter
from .spectral import OnlineBandPower, band_power, differential_entropy, sliding_windows

__all__ = [
    "FREQ_BANDS",
    "design_sos",
    "filter_data",
    "notch_filter",
    "StreamingFilter",
    "band_power",
    "differential_entropy",
    "sliding_windows",
    "OnlineBandPower",
]
