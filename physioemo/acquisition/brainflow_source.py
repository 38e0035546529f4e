"""BrainFlow sources: real headsets, the synthetic board and the playback board.

This is the only module that imports BrainFlow. BrainFlow's packed rows (package counter,
EEG rows, timestamp row, ...) are turned into named arrays here and never seen elsewhere.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from pathlib import Path

import numpy as np

from ..exceptions import DataError, DeviceError, ParameterError
from ..utils._checks import check_number
from .base import Source
from .profiles import CONNECTION_FLAGS, load_profile

#: Relative tolerance between a playback file's sampling rate and its device's.
RATE_TOLERANCE = 0.02

# BrainFlow exit codes that mean "the port is missing or busy" / "the board is silent".
_PORT_ERRORS = {2, 4}  # UNABLE_TO_OPEN_PORT_ERROR, SET_PORT_ERROR
_SILENT_ERRORS = {7, 8, 18}  # BOARD_NOT_READY, BOARD_NOT_CREATED, SYNC_TIMEOUT


def _brainflow():
    import warnings

    with warnings.catch_warnings():  # brainflow 5.x imports the deprecated pkg_resources
        warnings.simplefilter("ignore")
        from brainflow.board_shim import (
            BoardShim,
            BrainFlowError,
            BrainFlowInputParams,
            LogLevels,
        )
        BoardShim.set_log_level(LogLevels.LEVEL_OFF.value)  # loads pkg_resources lazily
    return BoardShim, BrainFlowError, BrainFlowInputParams


class BrainFlowSource(Source):
    """A BrainFlow board described by a device profile.

    Parameters
    ----------
    profile : str | DeviceProfile
        Device profile name (``"synthetic"``, ``"cyton"``, ``"playback"``, ...).
    serial_port : str | None
        Serial port of USB-dongle boards (``/dev/ttyUSB0``, ``COM3``).
    mac_address : str | None
        Bluetooth MAC address (Ganglion).
    ip_address : str | None
        IP address of a WiFi shield.
    ip_port : int | None
        Local port for WiFi shields.
    file : str | Path | None
        Playback board only: a BrainFlow CSV file or a physioemo EDF+/BDF+ recording.
    master : str | None
        Playback board only: profile of the device that recorded ``file`` (default: the
        one named in a physioemo recording, else the playback profile's ``master``).
    speed : float
        Playback board only: replay this many times faster than real time.
    buffer_size : int
        Samples BrainFlow's own ring buffer holds between two reads.
    """

    def __init__(self, profile, *, serial_port=None, mac_address=None, ip_address=None,
                 ip_port=None, file=None, master=None, speed=1.0, buffer_size=450_000):
        super().__init__()
        self.profile = profile
        self.serial_port = serial_port
        self.mac_address = mac_address
        self.ip_address = ip_address
        self.ip_port = ip_port
        self.file = file
        self.master = master
        self.speed = speed
        self.buffer_size = buffer_size
        self._board = None
        self._tmpdir = None
        self.n_file_samples = None
        self._prepare_profile()

    # -- setup ----------------------------------------------------------------------------
    def _prepare_profile(self):
        """Resolve profiles and connection parameters (no device access)."""
        prof = load_profile(self.profile)
        self._profile = prof
        if prof.driver != "brainflow":
            raise DeviceError(f"device {prof.name!r} has no driver ({prof.description}); it "
                              "only describes a channel layout; pick a device listed with a "
                              "driver by `physioemo devices`.")
        given = {"serial_port": self.serial_port, "mac_address": self.mac_address,
                 "ip_address": self.ip_address, "ip_port": self.ip_port, "file": self.file}
        for key in prof.required:
            if not given[key]:
                example = {"serial_port": " (e.g. /dev/ttyUSB0 or COM3)",
                           "ip_address": " (e.g. 192.168.4.1)",
                           "file": " (a BrainFlow CSV or physioemo .edf)"}.get(key, "")
                raise ParameterError(f"device {prof.name!r} needs {CONNECTION_FLAGS[key]}: "
                                     f"it is a required connection parameter, got none; "
                                     f"pass {CONNECTION_FLAGS[key]}{example}.")
        for key, value in given.items():
            if value and key not in prof.required + prof.optional:
                raise ParameterError(f"device {prof.name!r} does not use "
                                     f"{CONNECTION_FLAGS[key]} (it takes "
                                     f"{', '.join(CONNECTION_FLAGS[k] for k in prof.required + prof.optional) or 'no connection parameters'}"  # noqa: E501
                                     f"), got {value!r}; remove it.")
        self.speed = check_number("speed", self.speed, low=0, low_inclusive=False,
                                  hint="pass --speed 1 for real time")
        if self.speed != 1.0 and prof.board_id != -3:
            raise ParameterError(f"speed={self.speed} only applies to the playback device, "
                                 f"got device {prof.name!r}; drop --speed.")
        if prof.board_id == -3:
            path = Path(self.file).expanduser()
            if not path.is_file():
                raise DataError(f"playback file {str(path)!r} does not exist; pass the path "
                                "of a BrainFlow CSV file or a physioemo .edf recording.")
            self._file = path
            master = self.master
            if master is None and path.suffix.lower() in (".edf", ".bdf"):
                master = _recording_device(path)
            self._master = load_profile(master or prof.master or "synthetic")
            if self._master.board_id is None or self._master.board_id in (-2, -3):
                raise ParameterError(f"master={self._master.name!r} cannot have recorded a "
                                     "playback file (it is not a headset driver); pass "
                                     "--master with the device that recorded the file.")
            dev = self._master
        else:
            self._master = None
            dev = prof
        self.ch_names = list(dev.ch_names)
        self.sfreq = float(dev.sfreq)
        self.units = dev.units
        self.physical_min = dev.physical_min
        self.physical_max = dev.physical_max
        self.line_freq = dev.line_freq
        self.device = dev
        self.rate_factor = self.speed

    @property
    def exhausted(self):
        """Whether the playback board has delivered every sample of its file."""
        return self.n_file_samples is not None and self.n_samples >= self.n_file_samples

    def reconnect(self):
        """Restart a stalled board; a playback file is never restarted (it would repeat)."""
        if self._master is not None:
            return False
        return super().reconnect()

    def info(self):
        """Return a dict describing the source (stored in the sidecar JSON)."""
        out = super().info()
        out.update({"device": self._profile.name, "board_id": self._profile.board_id,
                    "serial_port": self.serial_port, "mac_address": self.mac_address,
                    "ip_address": self.ip_address, "ip_port": self.ip_port})
        if self._master is not None:
            out.update({"file": str(self._file), "master": self._master.name,
                        "speed": self.speed})
        return out

    def _playback_file(self, BoardShim):
        """Return a BrainFlow CSV the playback board can replay (converted if needed)."""
        dev = self._master
        descr = BoardShim.get_board_descr(dev.board_id)
        num_rows = descr["num_rows"]
        ts_row = descr["timestamp_channel"]
        path = self._file
        if path.suffix.lower() in (".edf", ".bdf"):
            data, sfreq, labels = _read_edf(path)
            if abs(sfreq - dev.sfreq) > RATE_TOLERANCE * dev.sfreq:
                raise DataError(f"playback file {str(path)!r} is sampled at {sfreq:g} Hz but "
                                f"device {dev.name!r} records at {dev.sfreq:g} Hz; pass "
                                "--master with the device that recorded the file.")
            if len(labels) != dev.n_channels:
                raise DataError(f"playback file {str(path)!r} has {len(labels)} channels but "
                                f"device {dev.name!r} has {dev.n_channels}; pass --master "
                                "with the device that recorded the file.")
            rows = np.zeros((num_rows, data.shape[1]))
            rows[descr["eeg_channels"]] = data
            rows[descr["package_num_channel"]] = np.arange(data.shape[1]) % 256
            rows[ts_row] = 1.0 + np.arange(data.shape[1]) / sfreq
        else:
            try:
                rows = np.loadtxt(path, delimiter="\t", ndmin=2).T
            except ValueError as err:
                raise DataError(f"playback file {str(path)!r} is not a BrainFlow CSV file "
                                f"({err}); pass a file written by BrainFlow's "
                                "DataFilter.write_file or a physioemo .edf.") from None
            if rows.shape[0] != num_rows:
                raise DataError(f"playback file {str(path)!r} has {rows.shape[0]} columns but "
                                f"device {dev.name!r} writes {num_rows}; pass --master with "
                                "the device that recorded the file.")
            if rows.shape[1] > 1:
                dt = np.median(np.diff(rows[ts_row]))
                sfreq = 1.0 / dt if dt > 0 else float("inf")
                if abs(sfreq - dev.sfreq) > RATE_TOLERANCE * dev.sfreq:
                    raise DataError(f"playback file {str(path)!r} is sampled at {sfreq:.4g} "
                                    f"Hz (from its timestamps) but device {dev.name!r} "
                                    f"records at {dev.sfreq:g} Hz; pass --master with the "
                                    "device that recorded the file.")
            if self.speed == 1.0:
                self.n_file_samples = rows.shape[1]
                return path
        self.n_file_samples = rows.shape[1]
        ts = rows[ts_row]
        rows[ts_row] = 1.0 + (ts - ts[0]) / self.speed  # the board paces on these
        self._tmpdir = Path(tempfile.mkdtemp(prefix="physioemo-playback-"))
        out = self._tmpdir / "playback.csv"
        np.savetxt(out, rows.T, delimiter="\t", fmt="%.17g")
        return out

    # -- Source -----------------------------------------------------------------------------
    def _start(self):
        BoardShim, BrainFlowError, BrainFlowInputParams = _brainflow()
        prof = self._profile
        params = BrainFlowInputParams()
        if self.serial_port:
            params.serial_port = str(self.serial_port)
        if self.mac_address:
            params.mac_address = str(self.mac_address)
        if self.ip_address:
            params.ip_address = str(self.ip_address)
        if self.ip_port:
            params.ip_port = int(self.ip_port)
        layout = prof.board_id
        if self._master is not None:
            params.file = str(self._playback_file(BoardShim))
            params.master_board = self._master.board_id
            layout = self._master.board_id
        descr = BoardShim.get_board_descr(layout)
        self._eeg_rows = list(descr["eeg_channels"])
        self._ts_row = descr["timestamp_channel"]
        self._pkg_row = descr.get("package_num_channel")
        if len(self._eeg_rows) != len(self.ch_names):
            raise DeviceError(f"device profile {self.device.name!r} names "
                              f"{len(self.ch_names)} channels but BrainFlow board {layout} "
                              f"has {len(self._eeg_rows)} EEG rows; fix the profile.")
        board = BoardShim(prof.board_id, params)
        try:
            board.prepare_session()
            if self._master is not None:
                board.config_board("loopback_false")
                board.config_board("new_timestamps")
            board.start_stream(int(self.buffer_size))
        except BrainFlowError as err:
            try:
                board.release_session()
            except BrainFlowError:
                pass
            self._cleanup()
            raise DeviceError(self._explain(err)) from None
        self._board = board
        self._BrainFlowError = BrainFlowError

    def _explain(self, err):
        code = getattr(err, "exit_code", None)
        name = self._profile.name
        where = self.serial_port or self.ip_address or self.mac_address or ""
        if code in _PORT_ERRORS:
            return (f"cannot open {name!r} on {where!r}: the port is missing or busy "
                    f"(BrainFlow code {code}); plug in the dongle, close other programs "
                    "using it (e.g. the OpenBCI GUI) or pass the right --serial-port.")
        if code in _SILENT_ERRORS:
            return (f"device {name!r} on {where!r} is not responding (BrainFlow code {code}); "
                    "switch the board on, check its battery and that the dongle and board "
                    "are paired, then try again.")
        msg = re.sub(r"\s+", " ", str(err)).strip()
        return (f"device {name!r} could not be started ({msg}); check the connection "
                "parameters and that the device is on.")

    def _read(self, max_samples):
        try:
            if max_samples is None:
                rows = self._board.get_board_data()
            else:
                rows = self._board.get_board_data(int(max_samples))
        except self._BrainFlowError as err:
            raise DeviceError(self._explain(err)) from None
        pkg = rows[self._pkg_row] if self._pkg_row is not None else None
        return rows[self._eeg_rows], rows[self._ts_row], pkg

    def _stop(self):
        board, self._board = self._board, None
        if board is not None:
            for step in (board.stop_stream, board.release_session):
                try:
                    step()
                except self._BrainFlowError:
                    pass
        self._cleanup()

    def _cleanup(self):
        if self._tmpdir is not None:
            shutil.rmtree(self._tmpdir, ignore_errors=True)
            self._tmpdir = None


def _read_edf(path):
    """Return ``(data (n_channels, n_times), sfreq, labels)`` of an EDF/BDF file."""
    from .replay import open_edf

    with open_edf(path) as (reader, sfreq):
        n = reader.signals_in_file
        data = np.vstack([reader.readSignal(i) for i in range(n)]) if n else np.empty((0, 0))
        return data, sfreq, reader.getSignalLabels()


def _recording_device(path):
    """Name of the device profile that recorded a physioemo EDF+ (or ``None``)."""
    import json

    from .recorder import sidecar_path

    side = sidecar_path(path)
    if side.is_file():
        try:
            meta = json.loads(side.read_text())
            dev = meta.get("layout_device") or meta.get("device")
        except ValueError:
            dev = None
        if isinstance(dev, str):
            return dev
    import pyedflib

    try:
        reader = pyedflib.EdfReader(str(path))
    except OSError:
        return None
    try:
        equipment = reader.getEquipment()
    finally:
        reader.close()
    prefix = "physioemo:"
    return equipment.strip()[len(prefix):] if equipment.startswith(prefix) else None
