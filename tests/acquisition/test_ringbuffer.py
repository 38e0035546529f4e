"""RingBuffer against a plain concatenation oracle."""

import threading

import numpy as np
import pytest

from physioemo.acquisition.ringbuffer import RingBuffer
from physioemo.exceptions import ParameterError


def test_fifo_with_wraparound_matches_concatenation():
    rng = np.random.default_rng(0)
    ring = RingBuffer(3, 50)
    pushed, popped = [], []
    for _ in range(200):
        n = int(rng.integers(0, 20))
        block = rng.normal(size=(3, n))
        ring.push(block)
        pushed.append(block)
        if rng.random() < 0.6:
            popped.append(ring.pop(max_samples=int(rng.integers(1, 40))))
        assert len(ring) <= 50
    popped.append(ring.pop())
    sent = np.concatenate(pushed, axis=1)
    got = np.concatenate(popped, axis=1)
    lost = ring.n_overflow
    assert ring.n_pushed == sent.shape[1] and ring.n_popped == got.shape[1]
    assert got.shape[1] + lost == sent.shape[1]
    if lost == 0:
        np.testing.assert_array_equal(got, sent)


def test_overflow_drops_the_oldest_and_counts_them():
    ring = RingBuffer(1, 10)
    ring.push(np.arange(7.0)[None])
    ring.push(np.arange(7.0, 15.0)[None])  # 15 pushed, 10 fit
    assert ring.n_overflow == 5
    np.testing.assert_array_equal(ring.pop()[0], np.arange(5.0, 15.0))
    ring.push(np.arange(25.0)[None])  # one block larger than the buffer
    assert ring.n_overflow == 20
    np.testing.assert_array_equal(ring.pop()[0], np.arange(15.0, 25.0))
    assert ring.pop().shape == (1, 0)


def test_threads_lose_nothing_when_the_consumer_keeps_up():
    ring = RingBuffer(2, 100_000)
    data = np.random.default_rng(1).normal(size=(2, 50_000))
    got = []

    def producer():
        for i in range(0, 50_000, 7):
            ring.push(data[:, i:i + 7])

    t = threading.Thread(target=producer)
    t.start()
    while t.is_alive() or len(ring):
        got.append(ring.pop())
    t.join()
    np.testing.assert_array_equal(np.concatenate(got, axis=1), data)
    assert ring.n_overflow == 0


def test_shape_checked():
    with pytest.raises(ParameterError, match=r"shape \(2, n_times\)"):
        RingBuffer(2, 10).push(np.zeros((3, 4)))
