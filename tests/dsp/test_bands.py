"""Tests for physioemo.dsp.bands."""

import pytest

from physioemo.dsp import FREQ_BANDS


def test_freq_bands_are_the_documented_bands():
    # issue 3 / DREAMER-SEED convention, in this order
    assert list(FREQ_BANDS.items()) == [("delta", (1.0, 4.0)), ("theta", (4.0, 8.0)),
                                        ("alpha", (8.0, 14.0)), ("beta", (14.0, 31.0)),
                                        ("gamma", (31.0, 45.0))]


def test_freq_bands_are_contiguous_and_read_only():
    edges = list(FREQ_BANDS.values())
    assert all(a[1] == b[0] for a, b in zip(edges[:-1], edges[1:], strict=True))
    with pytest.raises(TypeError):
        FREQ_BANDS["mu"] = (8.0, 12.0)
