import numpy as np
import pytest

from physioemo.datasets import binarize, make_windows
from physioemo.exceptions import ParameterError


@pytest.fixture
def data_labels():
    rng = np.random.default_rng(0)
    data = rng.standard_normal((3, 4, 14, 640)).astype(np.float32)
    labels = rng.integers(0, 5, (3, 4, 3))
    return data, labels


def test_non_overlapping_windows_and_metadata(data_labels):
    data, labels = data_labels
    X, meta = make_windows(data, labels)
    assert X.shape == (3 * 4 * 5, 14, 128) and X.dtype == np.float32
    assert X.flags.c_contiguous and not np.shares_memory(X, data)
    assert set(meta) == {"subject", "clip", "start", "valence", "arousal", "dominance"}
    # the straightforward loop is the oracle
    k = 0
    for s in range(3):
        for c in range(4):
            for start in range(0, 640 - 127, 128):
                np.testing.assert_array_equal(X[k], data[s, c, :, start:start + 128])
                assert (meta["subject"][k], meta["clip"][k], meta["start"][k]) == (s, c, start)
                assert (meta["valence"][k], meta["arousal"][k], meta["dominance"][k]) == \
                    tuple(labels[s, c])
                k += 1
    assert k == len(X)
    assert all(v.dtype == np.int64 and v.shape == (len(X),) for v in meta.values())


def test_overlapping_windows_and_subject_ids(data_labels):
    data, labels = data_labels
    X, meta = make_windows(data, labels, window_samples=256, step_samples=100,
                           subject_ids=[7, 8, 9])
    starts = np.arange(0, 640 - 256 + 1, 100)
    assert X.shape == (3 * 4 * starts.size, 14, 256)
    np.testing.assert_array_equal(meta["start"][: starts.size], starts)
    np.testing.assert_array_equal(np.unique(meta["subject"]), [7, 8, 9])
    i = np.flatnonzero((meta["subject"] == 8) & (meta["clip"] == 3) & (meta["start"] == 300))[0]
    np.testing.assert_array_equal(X[i], data[1, 3, :, 300:556])


def test_window_errors(data_labels):
    data, labels = data_labels
    with pytest.raises(ParameterError, match=r"labels must have shape .*\(3, 4, 3\)"):
        make_windows(data, labels[:, :2])
    with pytest.raises(ParameterError, match="window_samples=1000 is out of range"):
        make_windows(data, labels, window_samples=1000)
    bad = labels.astype(float)
    bad[0, 0, 0] = np.nan
    with pytest.raises(ParameterError, match="NaN.*never draws a random label"):
        make_windows(data, bad)
    with pytest.raises(ParameterError, match=r"classes 0\.\.4 \(rating - 1\), got values 1\.\.5"):
        make_windows(data, labels + 1)


def test_binarize_needs_explicit_threshold():
    labels = np.array([[0, 1, 2], [3, 4, 2]])
    np.testing.assert_array_equal(binarize(labels, 3), [[0, 0, 0], [1, 1, 0]])
    np.testing.assert_array_equal(binarize(labels, 2), [[0, 0, 1], [1, 1, 1]])
    with pytest.raises(ParameterError, match="explicit threshold"):
        binarize(labels, None)
    with pytest.raises(ParameterError, match="threshold=0 is out of range"):
        binarize(labels, 0)
    with pytest.raises(ParameterError, match="NaN"):
        binarize(np.array([1.0, np.nan]), 2)
