"""Publish the filtered EEG and the online band powers as LSL streams."""

from __future__ import annotations

import time

import numpy as np


class LSLOutlet:
    """Two LSL outlets: ``{name}-eeg`` (filtered EEG) and ``{name}-bands`` (features).

    Parameters
    ----------
    ch_names : list of str
        Channel names.
    sfreq : float
        Sampling frequency in Hz of the EEG stream.
    name : str
        Prefix of the stream names.
    """

    def __init__(self, ch_names, sfreq, *, name="physioemo"):
        self.ch_names = list(ch_names)
        self.sfreq = sfreq
        self.name = name
        self._eeg = self._bands = None

    def start(self, band_names):
        """Create the outlets; ``band_names`` label the feature stream's channels."""
        import pylsl

        info = pylsl.StreamInfo(f"{self.name}-eeg", "EEG", len(self.ch_names), self.sfreq,
                                "float32", f"{self.name}-eeg")
        chans = info.desc().append_child("channels")
        for ch in self.ch_names:
            c = chans.append_child("channel")
            c.append_child_value("label", ch)
            c.append_child_value("unit", "microvolts")
        self._eeg = pylsl.StreamOutlet(info)
        labels = [f"{ch}-{b}" for ch in self.ch_names for b in band_names]
        info = pylsl.StreamInfo(f"{self.name}-bands", "BandPower", len(labels),
                                pylsl.IRREGULAR_RATE, "float32", f"{self.name}-bands")
        chans = info.desc().append_child("channels")
        for label in labels:
            chans.append_child("channel").append_child_value("label", label)
        self._bands = pylsl.StreamOutlet(info)
        self._offset = time.time() - pylsl.local_clock()  # host time -> LSL time
        return self

    def push(self, filtered, timestamps):
        """Publish filtered samples, shape (n_channels, n_times), with host timestamps."""
        if self._eeg is not None and filtered.shape[1]:
            self._eeg.push_chunk(np.ascontiguousarray(filtered.T, dtype=np.float32),
                                 float(timestamps[-1] - self._offset))

    def push_features(self, features):
        """Publish one feature vector, shape (n_channels, n_bands), flattened row-major."""
        if self._bands is not None:
            self._bands.push_sample(np.asarray(features, dtype=np.float32).ravel())

    def stop(self):
        """Close the outlets (after a moment for connected inlets to get the last data)."""
        if any(o is not None and o.have_consumers() for o in (self._eeg, self._bands)):
            time.sleep(0.2)  # LSL sends from a background thread; let it drain
        self._eeg = self._bands = None
