import numpy as np
import pytest

from physioemo.evaluation.splits import (
    ClipKFold,
    LeaveOneSubjectOut,
    TemporalBlockSplit,
    correct_labels,
    mode_labels,
    one_on_one_pairs,
    window_starts,
)
from physioemo.exceptions import DataError, ParameterError


def _covered(starts, w=128, n_times=7680):
    mask = np.zeros(n_times, bool)
    for s in starts:
        mask[s:s + w] = True
    return mask


def test_window_starts_counts_from_spec():
    # §5.2: stride 32 over 60 s gives 237 windows/clip; first 10 s at stride 32 gives 37.
    assert len(window_starts(7680, 128, 32)) == 237
    assert len(window_starts(7680, 128, 32, stop=1280)) == 37
    assert len(window_starts(7680, 128)) == 60
    np.testing.assert_array_equal(window_starts(7680, 128, start=1280)[:2], [1280, 1408])
    assert len(window_starts(7680, 128, start=1280)) == 50


@pytest.mark.parametrize("fold", range(10))
def test_sd_folds_never_touch_test_or_val_block(fold):
    split = TemporalBlockSplit()
    train, val, test = split.fold(fold, 7680)
    test_lo, val_lo = 768 * fold, 768 * ((fold - 1) % 10)
    # brute-force oracle: every start 0..7552 whose window misses both blocks
    every = np.arange(7680 - 128 + 1)
    ok = [s for s in every
          if not (s < test_lo + 768 and s + 128 > test_lo)
          and not (s < val_lo + 768 and s + 128 > val_lo)]
    np.testing.assert_array_equal(train, ok)
    covered = _covered(train)
    assert not covered[test_lo:test_lo + 768].any()
    assert not covered[val_lo:val_lo + 768].any()
    np.testing.assert_array_equal(test, np.arange(test_lo, test_lo + 768 - 127))
    np.testing.assert_array_equal(val, np.arange(val_lo, val_lo + 768 - 127))


def test_sd_fold0_uses_block9_for_validation():
    train, val, test = TemporalBlockSplit().fold(0, 7680)
    assert val[0] == 6912 and test[0] == 0
    assert train.min() == 768 and train.max() == 6912 - 128
    assert len(list(TemporalBlockSplit().split(np.zeros((18, 14, 7680))))) == 10


def test_sd_blocks_too_short_is_an_error():
    with pytest.raises(ParameterError, match="shorter than the window"):
        TemporalBlockSplit().fold(0, 1000)


def test_clip_kfold_disjoint_and_complete():
    cv = ClipKFold(n_splits=6, random_state=3)
    tests = []
    for train, val, test in cv.split_clips(18):
        assert len(test) == 3 and len(val) == 3 and len(train) == 12
        assert not set(train) & set(test) and not set(train) & set(val)
        assert not set(val) & set(test)
        tests.extend(test)
    np.testing.assert_array_equal(np.sort(tests), np.arange(18))


def test_clip_kfold_window_split_never_shares_a_clip():
    groups = np.repeat(np.arange(18), 60)
    X = np.zeros((len(groups), 2))
    for train, val, test in ClipKFold(6, random_state=0).split(X, groups=groups):
        assert not set(groups[train]) & set(groups[test])
        assert not set(groups[val]) & set(groups[test])
        assert len(train) + len(val) + len(test) == len(groups)
    with pytest.raises(ParameterError, match="needs groups"):
        next(ClipKFold().split(X))


def test_mode_labels_ties_go_low():
    # hand computation: column 0 ratings (2, 2, 3, 3, 1) -> tie 2/3 -> 2;
    # column 1 (4, 4, 4, 0, 0) -> 4; column 2 (1, 3, 0, 2, 4) -> all tie -> 0.
    labels = np.array([[2, 4, 1], [2, 4, 3], [3, 4, 0], [3, 0, 2], [1, 0, 4]])
    np.testing.assert_array_equal(mode_labels(labels, axis=0), [2, 4, 0])
    with pytest.raises(DataError, match="non-negative integers"):
        mode_labels(np.array([[0.5]]))


def test_correct_labels_hand_computed():
    # 4 subjects, 2 clips, 3 dimensions; subject 3 is the test subject.
    labels = np.array([
        [[0, 1, 4], [2, 2, 2]],
        [[0, 3, 4], [1, 2, 3]],
        [[1, 3, 0], [1, 4, 3]],
        [[4, 4, 4], [4, 4, 4]],  # test subject: never used
    ])
    out = correct_labels(labels, [0, 1, 2])
    expected_one = np.array([[0, 3, 4], [1, 2, 3]])
    assert out.shape == (3, 2, 3)
    for s in range(3):
        np.testing.assert_array_equal(out[s], expected_one)


def test_loso_and_1on1_pairs():
    splits = list(LeaveOneSubjectOut().split(4))
    assert [t for _, t in splits] == [0, 1, 2, 3]
    np.testing.assert_array_equal(splits[2][0], [0, 1, 3])
    assert one_on_one_pairs(23)[0] == (22, 0)
    assert one_on_one_pairs(23, [5]) == [(4, 5)]
