"""Exceptions raised by physioemo.

Every error a user can cause derives from :class:`PhysioEmoError`; the CLI turns
these into one clear line and a non-zero exit code instead of a traceback.
"""


class PhysioEmoError(Exception):
    """Root of every physioemo error."""


class ParameterError(PhysioEmoError, ValueError):
    """A parameter value is invalid (wrong type, out of range, inconsistent)."""


class DataError(PhysioEmoError):
    """Input data is missing, corrupt or has the wrong layout."""


class DeviceError(PhysioEmoError):
    """An acquisition device is missing, busy or not responding."""


class UsageError(PhysioEmoError):
    """A command line was used wrongly (exit code 2)."""
