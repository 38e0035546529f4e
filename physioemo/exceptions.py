"""Exceptions raised by physioemo.

Every error a user can cause derives from :class:`PhysioEmoError`; the CLI turns
these into one clear line and a non-zero exit code instead of a traceback.
"""


class PhysioEmoError(Exception):
    """Root of every physioemo error."""


class ParameterError(PhysioEmoError, ValueError):
    """A parameter value is invalid (wrong type, out of range, inconsistent)."""


class DataError(PhysioEmoError, ValueError):
    """Input data is missing, corrupt or has the wrong layout (NaN, a bad file...).

    A :class:`ValueError`, like :class:`ParameterError`, so that the ``except ValueError``
    which catches numpy's, scipy's and MNE's bad-value errors catches ours too.
    """


class DeviceError(PhysioEmoError):
    """An acquisition device is missing, busy or not responding."""


class UsageError(PhysioEmoError):
    """A command line was used wrongly (exit code 2)."""
