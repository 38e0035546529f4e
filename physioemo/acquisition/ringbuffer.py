"""A thread-safe ring buffer between the device reader thread and the processing loop."""

from __future__ import annotations

import threading

import numpy as np

from ..utils._checks import check_number


class RingBuffer:
    """Fixed-capacity FIFO of multichannel samples, written and read by different threads.

    The reader thread :meth:`push`-es what the device delivers; the processing loop
    :meth:`pop`-s everything that is waiting. When the consumer falls behind by more than
    ``capacity`` samples the oldest unread samples are overwritten and counted in
    :attr:`n_overflow` (size the buffer for the worst stall you expect).

    Parameters
    ----------
    n_rows : int
        Rows per sample (channels plus any per-sample extras such as timestamps).
    capacity : int
        Samples the buffer holds.

    Attributes
    ----------
    n_pushed, n_popped, n_overflow : int
        Samples written, read, and lost to overflow since creation.
    """

    def __init__(self, n_rows, capacity):
        self.n_rows = check_number("n_rows", n_rows, low=1, integer=True)
        self.capacity = check_number("capacity", capacity, low=1, integer=True)
        self._buf = np.empty((self.n_rows, self.capacity))
        self._lock = threading.Lock()
        self._start = 0  # absolute index of the oldest unread sample
        self.n_pushed = 0
        self.n_popped = 0
        self.n_overflow = 0

    def __len__(self):
        with self._lock:
            return self.n_pushed - self._start

    def push(self, block):
        """Append samples.

        Parameters
        ----------
        block : ndarray, shape (n_rows, n_times)
            The new samples.
        """
        block = np.asarray(block, dtype=np.float64)
        if block.ndim != 2 or block.shape[0] != self.n_rows:
            from ..exceptions import ParameterError
            raise ParameterError(f"block must have shape ({self.n_rows}, n_times), got "
                                 f"{block.shape}; pass one row per channel/extra.")
        n = block.shape[1]
        if n == 0:
            return
        with self._lock:
            end = self.n_pushed + n
            lost = end - self._start - self.capacity
            if lost > 0:  # the consumer fell behind: the oldest unread samples are gone
                self.n_overflow += lost
                self._start += lost
            first = self.n_pushed
            if n > self.capacity:
                block = block[:, n - self.capacity:]
                first = end - self.capacity
            m = block.shape[1]
            i0 = first % self.capacity
            k = min(m, self.capacity - i0)
            self._buf[:, i0:i0 + k] = block[:, :k]
            self._buf[:, :m - k] = block[:, k:]
            self.n_pushed = end

    def pop(self, max_samples=None):
        """Remove and return the oldest waiting samples.

        Parameters
        ----------
        max_samples : int | None
            At most this many samples; ``None`` returns everything waiting.

        Returns
        -------
        block : ndarray, shape (n_rows, n_times)
            A copy of the samples (``n_times`` may be 0).
        """
        with self._lock:
            n = self.n_pushed - self._start
            if max_samples is not None:
                n = min(n, int(max_samples))
            i0 = self._start % self.capacity
            k = min(n, self.capacity - i0)
            out = np.concatenate([self._buf[:, i0:i0 + k], self._buf[:, :n - k]], axis=1)
            self._start += n
            self.n_popped += n
        return out
