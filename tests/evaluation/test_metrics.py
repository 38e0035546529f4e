import numpy as np
import pytest
from sklearn import metrics as skm

from physioemo.evaluation import metrics as M
from physioemo.exceptions import ParameterError

# histn-spec §4 worked example
Y = np.array([0, 1, 2, 2, 3, 4])
SCORES = np.array([
    [.60, .30, .05, .03, .02],
    [.10, .20, .50, .15, .05],
    [.05, .10, .30, .15, .40],
    [.40, .05, .10, .35, .10],
    [.05, .05, .20, .30, .40],
    [.02, .08, .10, .30, .50],
])


def test_worked_example():
    assert M.accuracy(Y, SCORES) == pytest.approx(100 * 2 / 6)
    assert M.top2_accuracy(Y, SCORES) == pytest.approx(100 * 5 / 6)
    # class 0: P=1/2 R=1 -> 2/3; class 4: P=1/3 R=1 -> 1/2; others 0
    assert M.weighted_f1(Y, SCORES) == pytest.approx(100 * (2 / 3 + 1 / 2) / 6)
    assert M.macro_f1(Y, SCORES) == pytest.approx(100 * (2 / 3 + 1 / 2) / 5)
    assert M.tri_p(Y, SCORES) == pytest.approx(100 * 4 / 6)
    assert M.seq2hr(Y, SCORES) == pytest.approx(100 * 4 / 6)
    got = M.compute_metrics(Y, SCORES)
    rounded = {k: round(v, 2) for k, v in got.items() if k != "n_windows"}
    assert rounded == {"accuracy": 33.33, "top2_accuracy": 83.33, "weighted_f1": 19.44,
                       "macro_f1": 23.33, "tri_p": 66.67, "seq2hr": 66.67}
    assert got["n_windows"] == 6
    # row 3 (y=2, top two 0 and 3) fails both; row 2 (top two 4, 2) counts for top-2 only
    assert M.top2_accuracy(Y[2:3], SCORES[2:3]) == 100.0
    assert M.seq2hr(Y[2:3], SCORES[2:3]) == 0.0


def test_against_sklearn_random():
    rng = np.random.default_rng(0)
    for n_classes, n in [(5, 300), (5, 7), (3, 50), (6, 1000)]:
        y = rng.integers(0, n_classes, n)
        scores = rng.random((n, n_classes))
        pred = scores.argmax(1)
        assert M.weighted_f1(y, scores) == pytest.approx(
            100 * skm.f1_score(y, pred, average="weighted", zero_division=0))
        assert M.macro_f1(y, scores) == pytest.approx(
            100 * skm.f1_score(y, pred, average="macro", zero_division=0))
        assert M.accuracy(y, scores) == pytest.approx(100 * skm.accuracy_score(y, pred))
        assert M.top2_accuracy(y, scores) == pytest.approx(
            100 * skm.top_k_accuracy_score(y, scores, k=2, labels=np.arange(n_classes)))
        np.testing.assert_array_equal(
            M.confusion_matrix(y, scores, n_classes),
            skm.confusion_matrix(y, pred, labels=np.arange(n_classes)))
        # Tri-P and Seq2HR by an explicit loop
        order = np.argsort(-scores, 1, kind="stable")
        tri = np.mean([abs(o[0] - t) <= 1 for o, t in zip(order, y, strict=True)])
        seq = np.mean([abs(o[0] - o[1]) == 1 and t in o[:2] for o, t in zip(order, y,
                                                                          strict=True)])
        assert M.tri_p(y, scores) == pytest.approx(100 * tri)
        assert M.seq2hr(y, scores) == pytest.approx(100 * seq)


def test_f1_with_absent_classes_matches_sklearn():
    y = np.array([0, 0, 1, 1, 1])
    scores = np.eye(5)[[0, 3, 1, 1, 0]]  # predicts class 3, which is absent from y
    pred = scores.argmax(1)
    assert M.weighted_f1(y, scores) == pytest.approx(
        100 * skm.f1_score(y, pred, average="weighted", zero_division=0))
    assert M.macro_f1(y, scores) == pytest.approx(
        100 * skm.f1_score(y, pred, average="macro", zero_division=0))


def test_confusion_matrix_fresh_and_inputs_untouched():
    scores = SCORES.copy()
    cm1 = M.confusion_matrix(Y, scores)
    expected = np.zeros((5, 5), int)
    for t, p in zip(Y, [0, 2, 4, 0, 4, 4], strict=True):
        expected[t, p] += 1
    np.testing.assert_array_equal(cm1, expected)
    cm1[:] = -1
    cm2 = M.confusion_matrix(Y, scores)
    np.testing.assert_array_equal(cm2, expected)
    assert not np.shares_memory(cm1, cm2)
    np.testing.assert_array_equal(scores, SCORES)
    np.testing.assert_array_equal(M.confusion_matrix(Y, [0, 2, 4, 0, 4, 4]), expected)


def test_bad_input():
    with pytest.raises(ParameterError, match=r"y_true must have shape \(6,\)"):
        M.accuracy(Y[:5], SCORES)
    with pytest.raises(ParameterError, match=r"y_true must lie in 0\.\.4"):
        M.weighted_f1(Y + 1, SCORES)
    with pytest.raises(ParameterError, match="integer class indices"):
        M.seq2hr(Y + 0.5, SCORES)
    with pytest.raises(ParameterError, match="n_classes=4"):
        M.confusion_matrix(Y, SCORES, n_classes=4)
