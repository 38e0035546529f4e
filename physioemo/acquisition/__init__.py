"""Acquisition: device profiles, the :class:`Source` contract, ring buffer and EDF+ recorder.

Only :mod:`physioemo.acquisition.brainflow_source` imports BrainFlow, and only when a
BrainFlow source is started; importing this package loads neither BrainFlow nor pyedflib.
"""

from .base import Chunk, Source
from .profiles import DeviceProfile, list_profiles, load_profile

__all__ = ["Chunk", "DeviceProfile", "Source", "list_profiles", "load_profile"]
