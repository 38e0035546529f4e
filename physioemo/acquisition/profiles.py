"""Device profiles: one YAML file per headset in the repository's ``devices/`` folder.

A profile names the BrainFlow board id, channel names, sampling rate, line frequency,
physical units and range, and the connection parameters a user must give. The YAML files
in ``devices/`` are the one source of truth: ``physioemo/acquisition/profiles`` is a
symbolic link to it, packaged as package data (so a wheel carries copies of the same
files), and ``PHYSIOEMO_DEVICES_DIR`` points at a folder of extra or replacement
profiles.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from ..exceptions import DataError, ParameterError

#: Connection parameters a profile may require, with the CLI flag that gives each.
CONNECTION_FLAGS = {
    "serial_port": "--serial-port",
    "mac_address": "--mac",
    "ip_address": "--ip",
    "ip_port": "--ip-port",
    "file": "--file",
}

_KEYS = {"name", "description", "driver", "board_id", "sfreq", "line_freq", "ch_names",
         "montage", "units", "physical_min", "physical_max", "adc_bits", "connection",
         "master"}


@dataclass(frozen=True)
class DeviceProfile:
    """A headset's fixed facts, read from its YAML profile.

    Attributes
    ----------
    name : str
        Profile name (the file name without ``.yaml``), used by ``--device``.
    description : str
        One line shown by ``physioemo devices``.
    driver : str
        ``"brainflow"`` or ``"none"`` (a layout only, such as the DREAMER Emotiv EPOC).
    board_id : int | None
        BrainFlow board id (``-1`` synthetic, ``-3`` playback, ``0`` Cyton, ...).
    sfreq : float | None
        Sampling frequency in Hz (``None`` for playback: it comes from ``master``).
    line_freq : float | None
        Mains frequency in Hz used for the notch filter and line-noise telemetry.
    ch_names : tuple of str
        EEG channel names in the board's row order.
    montage : str | None
        Name of the MNE standard montage the channel names belong to.
    units : str
        Physical unit of the samples (``"uV"``).
    physical_min, physical_max : float | None
        Physical range written to the EDF/BDF header, in ``units``.
    adc_bits : int | None
        Resolution of the headset's converter (24-bit boards should be recorded as BDF+).
    required, optional : tuple of str
        Connection parameters (keys of :data:`CONNECTION_FLAGS`).
    master : str | None
        For the playback board: the profile of the device that recorded the file.
    path : Path | None
        The YAML file the profile was read from.
    """

    name: str
    description: str = ""
    driver: str = "brainflow"
    board_id: int | None = None
    sfreq: float | None = None
    line_freq: float | None = 50.0
    ch_names: tuple = ()
    montage: str | None = None
    units: str = "uV"
    physical_min: float | None = None
    physical_max: float | None = None
    adc_bits: int | None = None
    required: tuple = ()
    optional: tuple = ()
    master: str | None = None
    path: Path | None = field(default=None, compare=False)

    @property
    def n_channels(self):
        """Number of EEG channels."""
        return len(self.ch_names)

    def to_dict(self):
        """Return the profile as plain data (for the sidecar JSON)."""
        return {"name": self.name, "description": self.description, "driver": self.driver,
                "board_id": self.board_id, "sfreq": self.sfreq, "line_freq": self.line_freq,
                "ch_names": list(self.ch_names), "montage": self.montage, "units": self.units,
                "physical_min": self.physical_min, "physical_max": self.physical_max,
                "adc_bits": self.adc_bits, "required": list(self.required),
                "optional": list(self.optional), "master": self.master,
                "path": str(self.path) if self.path else None}


def profile_dirs():
    """Return the folders searched for profiles, highest priority first.

    Returns
    -------
    dirs : list of Path
        ``$PHYSIOEMO_DEVICES_DIR`` (if set), then ``physioemo/acquisition/profiles/``: in
        a checkout that is a symbolic link to the repository's ``devices/`` (the one
        source of truth); in an installed wheel it holds copies of the same files.
    """
    dirs = []
    env = os.environ.get("PHYSIOEMO_DEVICES_DIR")
    if env:
        dirs.append(Path(env).expanduser())
    packaged = Path(__file__).resolve().parent / "profiles"
    if packaged.is_dir():
        dirs.append(packaged.resolve())
    return dirs


def _profile_files():
    files = {}
    for folder in reversed(profile_dirs()):  # later (higher priority) folders win
        for path in sorted(folder.glob("*.yaml")):
            files[path.stem] = path
    return dict(sorted(files.items()))


def list_profiles():
    """Return every available profile, sorted by name.

    Returns
    -------
    profiles : list of DeviceProfile
        One per YAML file found in :func:`profile_dirs`.
    """
    return [_read(path) for path in _profile_files().values()]


def load_profile(name):
    """Load the profile called ``name``.

    Parameters
    ----------
    name : str | DeviceProfile
        Profile name as listed by ``physioemo devices`` (a profile is returned as is).

    Returns
    -------
    profile : DeviceProfile
        The parsed profile.
    """
    if isinstance(name, DeviceProfile):
        return name
    files = _profile_files()
    if name not in files:
        known = ", ".join(files) or "none found"
        raise ParameterError(f"unknown device {name!r}: it must be one of the profiles in "
                             f"devices/ ({known}); pick one of those (see `physioemo "
                             "devices`) or add a YAML profile.")
    return _read(files[name])


def _read(path):
    import yaml

    try:
        raw = yaml.safe_load(Path(path).read_text()) or {}
    except yaml.YAMLError as err:
        raise DataError(f"device profile {str(path)!r} is not valid YAML: {err}; fix the "
                        "file.") from None
    if not isinstance(raw, dict):
        raise DataError(f"device profile {str(path)!r} must be a mapping, got "
                        f"{type(raw).__name__}; write one key per line.")
    unknown = sorted(set(raw) - _KEYS)
    if unknown:
        raise DataError(f"device profile {str(path)!r} has unknown key(s) {unknown}; allowed "
                        f"keys are {sorted(_KEYS)}; remove or rename them.")
    conn = raw.get("connection") or {}
    for key in list(conn.get("required") or []) + list(conn.get("optional") or []):
        if key not in CONNECTION_FLAGS:
            raise DataError(f"device profile {str(path)!r} names connection parameter "
                            f"{key!r}; it must be one of {sorted(CONNECTION_FLAGS)}; fix "
                            "the profile.")
    if raw.get("driver", "brainflow") == "brainflow" and raw.get("board_id") is None:
        raise DataError(f"device profile {str(path)!r} has driver brainflow but no board_id; "
                        "add the BrainFlow board id.")
    ch_names = tuple(str(c) for c in raw.get("ch_names") or ())
    if len(set(ch_names)) != len(ch_names):
        raise DataError(f"device profile {str(path)!r} repeats channel names {ch_names}; "
                        "names must be unique; rename the duplicates.")
    return DeviceProfile(
        name=str(raw.get("name", Path(path).stem)),
        description=str(raw.get("description", "")),
        driver=str(raw.get("driver", "brainflow")),
        board_id=None if raw.get("board_id") is None else int(raw["board_id"]),
        sfreq=None if raw.get("sfreq") is None else float(raw["sfreq"]),
        line_freq=None if raw.get("line_freq") is None else float(raw["line_freq"]),
        ch_names=ch_names,
        montage=raw.get("montage"),
        units=str(raw.get("units", "uV")),
        physical_min=None if raw.get("physical_min") is None else float(raw["physical_min"]),
        physical_max=None if raw.get("physical_max") is None else float(raw["physical_max"]),
        adc_bits=None if raw.get("adc_bits") is None else int(raw["adc_bits"]),
        required=tuple(conn.get("required") or ()),
        optional=tuple(conn.get("optional") or ()),
        master=raw.get("master"),
        path=Path(path),
    )
