"""Optuna studies that survive many workers, crashes and restarts.

Storage is chosen by how many processes share the study:

* one process: an SQLite file (``study.db`` in the output directory). A lock file makes a
  second process on the same file fail at once with the reason, because SQLite serialises
  writers with a database-wide lock: concurrent Optuna workers on it hit ``database is
  locked`` errors and can lose trial updates.
* several processes on one machine (``--jobs K``, or a file path as ``--storage``): Optuna's
  journal file storage (:class:`optuna.storages.journal.JournalFileBackend`), an append-only
  log guarded by a file lock.
* any number of workers on any number of machines: an RDB URL (``postgresql://...``).

Every worker runs the same loop (:func:`run_worker`): under a study-wide lock it counts the
trial *lineages* (a trial plus its retries) and asks for a new trial only while fewer than
``n_trials`` exist, so K workers together run exactly ``n_trials``; a heartbeat thread marks
the running trial alive, and trials whose heartbeat stopped (a killed worker) are failed and
re-queued with the same parameters by
:class:`optuna.storages.RetryHeartbeatStaleTrialCallback`.
Re-running the same command continues the study.
"""

from __future__ import annotations

import contextlib
import copy
import datetime
import fcntl
import hashlib
import os
import re
import threading
import time
import warnings
from pathlib import Path

import optuna
from optuna.storages import JournalStorage, RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.storages._heartbeat import BaseHeartbeat
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState

from ..exceptions import DataError, ParameterError, PhysioEmoError, UsageError
from ..utils.logging import logger

#: Default file names inside ``--out``.
SQLITE_NAME = "study.db"
JOURNAL_NAME = "study.journal"

#: System attribute holding a journal trial's last heartbeat (Unix time).
_HEARTBEAT_ATTR = "physioemo:heartbeat"

_SAMPLERS = ("tpe", "random", "cmaes", "grid")
_PRUNERS = ("median", "hyperband", "none")


# --------------------------------------------------------------------------- credentials
def mask_url(url):
    """Return ``url`` with any password replaced by ``***``.

    Parameters
    ----------
    url : str | None
        A storage URL such as ``postgresql://user:secret@host/db`` or a file path.

    Returns
    -------
    masked : str | None
        The URL safe to print, log and write to files.
    """
    if url is None:
        return None
    url = str(url)
    out = url
    head, sep, rest = url.partition("://")
    if sep:
        netloc_end = len(rest)
        for ch in "?#":
            idx = rest.find(ch)
            if idx >= 0:
                netloc_end = min(netloc_end, idx)
        at = rest.rfind("@", 0, netloc_end)
        if at >= 0:
            userinfo = rest[:at]
            if ":" in userinfo:
                userinfo = userinfo.split(":", 1)[0] + ":***"
            out = f"{head}://{userinfo}@{rest[at + 1:]}"
    return re.sub(r"(?i)(password=)[^&\s]*", r"\1***", out)


def _secrets(url):
    """Return the password strings in ``url`` (to scrub them from any message)."""
    secrets = []
    head, sep, rest = str(url).partition("://")
    if sep:
        at = rest.rfind("@", 0, len(rest.split("?")[0]))
        if at >= 0 and ":" in rest[:at]:
            secrets.append(rest[:at].split(":", 1)[1])
    secrets += re.findall(r"(?i)password=([^&\s]*)", str(url))
    return [s for s in secrets if s]


def scrub(text, url):
    """Replace every credential of ``url`` found in ``text`` by ``***``."""
    text = str(text)
    for secret in _secrets(url):
        text = text.replace(secret, "***")
    return text


# --------------------------------------------------------------------------- storages
class StorageSpec:
    """Where a study lives.

    Parameters
    ----------
    kind : {"sqlite", "journal", "rdb"}
        The storage type.
    url : str
        The RDB URL (``sqlite:///...``, ``postgresql://...``) or the journal file path.
    multi_process : bool
        Whether several processes may share it.
    """

    def __init__(self, kind, url, *, multi_process):
        self.kind = kind
        self.url = url
        self.multi_process = multi_process

    @property
    def masked(self):
        """The location with credentials masked."""
        return mask_url(self.url)

    def __repr__(self):
        return f"StorageSpec({self.kind!r}, {self.masked!r})"


def resolve_storage(storage, out_dir, *, jobs=1):
    """Choose the storage for a study.

    Parameters
    ----------
    storage : str | None
        ``None`` (choose a file in ``out_dir``), an RDB URL (``postgresql://...``,
        ``sqlite:///...``) or the path of a journal file.
    out_dir : str | Path
        The tuning output directory.
    jobs : int
        Worker processes this command starts.

    Returns
    -------
    spec : StorageSpec
        The storage to use.
    """
    out_dir = Path(out_dir)
    if storage in (None, ""):
        sqlite_path, journal_path = out_dir / SQLITE_NAME, out_dir / JOURNAL_NAME
        if jobs > 1 and sqlite_path.exists() and not journal_path.exists():
            raise UsageError(
                f"--jobs {jobs} needs a storage that several processes can share, but this "
                f"study lives in the SQLite file {str(sqlite_path)!r}, which serialises writers "
                f"with one database lock (concurrent workers get 'database is locked' errors and "
                f"can lose trial updates); continue it with --jobs 1, or copy it to a journal "
                f"or PostgreSQL storage with optuna.copy_study and pass --storage.")
        if jobs > 1 or journal_path.exists():
            return StorageSpec("journal", str(journal_path.resolve()), multi_process=True)
        return StorageSpec("sqlite", f"sqlite:///{sqlite_path.resolve()}", multi_process=False)
    storage = str(storage)
    scheme = storage.split("://", 1)[0].lower() if "://" in storage else None
    if scheme is None:
        return StorageSpec("journal", str(Path(storage).expanduser().resolve()),
                           multi_process=True)
    if scheme.startswith("sqlite"):
        if jobs > 1:
            raise UsageError(
                f"--storage {mask_url(storage)} is SQLite, which cannot serve --jobs {jobs} "
                f"processes safely (one database-wide write lock: 'database is locked' errors "
                f"and lost updates under concurrent workers); use --jobs 1, drop --storage to "
                f"get a journal file, or use --storage postgresql://...")
        return StorageSpec("sqlite", storage, multi_process=False)
    if scheme.startswith(("postgresql", "postgres")):
        _check_userinfo(storage)
        if scheme.startswith("postgres") and not scheme.startswith("postgresql"):
            storage = "postgresql" + storage[len("postgres"):]
            scheme = "postgresql" + scheme[len("postgres"):]
        if scheme == "postgresql":
            storage = _with_driver(storage)
        return StorageSpec("rdb", storage, multi_process=True)
    if scheme == "journal":
        return StorageSpec("journal", str(Path(storage.split("://", 1)[1]).resolve()),
                           multi_process=True)
    raise ParameterError(
        f"--storage {mask_url(storage)} has an unsupported scheme {scheme!r}; physioemo tune "
        f"stores studies in PostgreSQL (postgresql://user:password@host:port/db), SQLite "
        f"(sqlite:///file.db, one process) or a journal file (a plain file path); use one of "
        f"these.")


def _check_userinfo(url):
    """Refuse a URL whose user name or password holds an unescaped ``@``, before connecting.

    Such a URL splits at the wrong ``@``: the rest of the password is taken for the host
    name (libpq then tries to resolve it) and may be printed in error messages.
    """
    rest = url.partition("://")[2]
    end = min([i for i in (rest.find("?"), rest.find("#")) if i >= 0] or [len(rest)])
    userinfo = rest[:rest.rfind("@", 0, end)] if "@" in rest[:end] else ""
    if "@" in userinfo:
        raise ParameterError(
            f"--storage {mask_url(url)} has an unescaped '@' in its user name or password; "
            "in a URL it must be percent-encoded as %40 (else the part after it is taken for "
            "the host name); encode the password, e.g. with "
            "python -c \"import urllib.parse; print(urllib.parse.quote('PASSWORD', safe=''))\".")


def _with_driver(url):
    """Name the installed PostgreSQL driver in a bare ``postgresql://`` URL.

    SQLAlchemy 2.1 maps a bare ``postgresql://`` to psycopg 3; the ``tune`` extra installs
    psycopg2, so the URL names whichever is importable (psycopg 3 first).
    """
    import importlib.util

    for module, dialect in (("psycopg", "postgresql+psycopg"),
                            ("psycopg2", "postgresql+psycopg2")):
        if importlib.util.find_spec(module) is not None:
            return dialect + url[len("postgresql"):]
    return url


class JournalHeartbeatStorage(JournalStorage, BaseHeartbeat):
    """Journal file storage with heartbeats, so killed workers' trials can be retried.

    Optuna's journal storage has no heartbeat; this one records each running trial's last
    heartbeat (Unix time) as a trial system attribute, and treats a running trial whose
    heartbeat is older than ``grace_period`` seconds as stale.

    Parameters
    ----------
    path : str | Path
        The journal file.
    heartbeat_interval : int
        Seconds between heartbeats of a running trial.
    grace_period : int
        Seconds without a heartbeat after which a running trial is stale.
    stale_trial_callback : callable | None
        Called as ``callback(study, frozen_trial)`` for every trial failed as stale.
    """

    def __init__(self, path, *, heartbeat_interval, grace_period, stale_trial_callback=None):
        # The default (symlink) lock, as plain Optuna uses, so both can share the file.
        super().__init__(JournalFileBackend(str(path)))
        self._heartbeat_interval = heartbeat_interval
        self._grace_period = grace_period
        self._stale_callback = stale_trial_callback

    def record_heartbeat(self, trial_id):
        """Record that ``trial_id`` is alive now."""
        with contextlib.suppress(optuna.exceptions.UpdateFinishedTrialError):
            self.set_trial_system_attr(trial_id, _HEARTBEAT_ATTR, time.time())

    def _get_stale_trial_ids(self, study_id):
        now = time.time()
        stale = []
        for trial in self.get_all_trials(study_id, deepcopy=False,
                                         states=(TrialState.RUNNING,)):
            beat = trial.system_attrs.get(_HEARTBEAT_ATTR)
            if beat is None and trial.datetime_start is not None:
                beat = trial.datetime_start.timestamp()
            if beat is not None and now - beat > self._grace_period:
                stale.append(trial._trial_id)
        return stale

    def get_heartbeat_interval(self):
        """Return the heartbeat interval in seconds."""
        return self._heartbeat_interval

    def get_heartbeat_stale_trial_callback(self):
        """Return the callback run for every stale trial."""
        return self._stale_callback


class RetryCallback:
    """Re-queue a failed trial with the same parameters, at most ``max_retry`` times.

    Wraps :class:`optuna.storages.RetryHeartbeatStaleTrialCallback` and drops the failed attempt's
    fold metrics and heartbeat, so the retry starts clean.

    Parameters
    ----------
    max_retry : int
        Retries per original trial.
    """

    def __init__(self, max_retry=3):
        self.max_retry = max_retry
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            self._inner = RetryHeartbeatStaleTrialCallback(max_retry=max_retry)

    def __repr__(self):
        return f"RetryCallback(max_retry={self.max_retry})"

    def __call__(self, study, trial):
        """Re-queue ``trial`` (a failed :class:`~optuna.trial.FrozenTrial`) in ``study``."""
        trial = copy.deepcopy(trial)
        trial.user_attrs = {}
        trial.system_attrs = {k: v for k, v in trial.system_attrs.items()
                              if k != _HEARTBEAT_ATTR}
        n_tries = len(trial.system_attrs.get("retry_history", [])) + 1
        if n_tries > self.max_retry:
            logger.warning("trial %d failed; not retried (already retried %d times)",
                           trial.number, self.max_retry)
        else:
            logger.warning("trial %d failed; re-queued with the same parameters (retry %d of "
                           "%d)", trial.number, n_tries, self.max_retry)
        self._inner(study, trial)


def open_storage(spec, *, heartbeat_interval=60, grace_period=120, max_retry=3):
    """Open (and create if needed) the Optuna storage described by ``spec``.

    Parameters
    ----------
    spec : StorageSpec
        From :func:`resolve_storage`.
    heartbeat_interval : int
        Seconds between heartbeats of a running trial.
    grace_period : int
        Seconds without heartbeat after which a running trial counts as dead and is retried.
    max_retry : int
        Retries of a failed trial.

    Returns
    -------
    storage : optuna.storages.BaseStorage
        The storage.
    """
    retry = RetryCallback(max_retry)
    if spec.kind == "journal":
        path = Path(spec.url)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            return JournalHeartbeatStorage(path, heartbeat_interval=heartbeat_interval,
                                           grace_period=grace_period,
                                           stale_trial_callback=retry)
        except OSError as err:
            raise DataError(f"cannot open the journal file {str(path)!r}: {err}; pass a "
                            f"writable path.") from None
    engine_kwargs = {"pool_pre_ping": True}
    if spec.kind == "sqlite":
        Path(spec.url.split(":///", 1)[1]).parent.mkdir(parents=True, exist_ok=True)
        engine_kwargs["connect_args"] = {"timeout": 60}
    else:
        engine_kwargs["connect_args"] = {"connect_timeout": 10}
    try:
        # Workers starting together would race to create Optuna's tables (PostgreSQL then
        # fails on a duplicate key); one advisory lock makes them take turns.
        init_lock = _PostgresLock(spec.url, "schema") if spec.kind == "rdb" else None
        try:
            if init_lock is not None:
                init_lock.__enter__()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return RDBStorage(spec.url, engine_kwargs=engine_kwargs,
                                  heartbeat_interval=heartbeat_interval,
                                  grace_period=grace_period,
                                  heartbeat_stale_trial_callback=retry)
        finally:
            if init_lock is not None:
                init_lock.__exit__(None, None, None)
                init_lock.close()
    except ModuleNotFoundError as err:
        raise ParameterError(
            f"storage {spec.masked} needs the Python package {err.name!r}, which is not "
            f"installed; install it with `pip install physioemo[tune]`.") from None
    except Exception as err:  # sqlalchemy.exc.OperationalError and friends
        reason = scrub(str(err).strip().splitlines()[0] if str(err).strip() else repr(err),
                       spec.url)
        raise DataError(
            f"cannot open the study storage {spec.masked}: {reason}; the storage must be "
            f"reachable, accept the credentials and hold Optuna's tables; check host, port, "
            f"database and user, or start the database server.") from None


# --------------------------------------------------------------------------- locks
class _ThreadLock:
    """Budget lock for a single process."""

    def __init__(self):
        self._lock = threading.Lock()

    def __enter__(self):
        self._lock.acquire()

    def __exit__(self, *exc):
        self._lock.release()

    def close(self):
        pass


class _FileLock:
    """Budget lock shared by processes on one machine (``flock``; freed if a process dies)."""

    def __init__(self, path):
        self._fd = os.open(str(path), os.O_RDWR | os.O_CREAT, 0o644)
        self._local = threading.Lock()

    def __enter__(self):
        self._local.acquire()
        fcntl.flock(self._fd, fcntl.LOCK_EX)

    def __exit__(self, *exc):
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        self._local.release()

    def close(self):
        os.close(self._fd)


class _PostgresLock:
    """Budget lock shared by workers on many machines (a PostgreSQL advisory lock).

    The lock belongs to the session, so the server frees it when a worker dies.
    """

    def __init__(self, url, study_name):
        import sqlalchemy

        self._key = int.from_bytes(hashlib.sha256(
            f"physioemo-tune:{study_name}".encode()).digest()[:8], "big", signed=True)
        self._engine = sqlalchemy.create_engine(url, poolclass=sqlalchemy.pool.NullPool,
                                                connect_args={"connect_timeout": 10})
        self._conn = self._engine.connect()
        self._text = sqlalchemy.text
        self._local = threading.Lock()

    def __enter__(self):
        self._local.acquire()
        self._conn.execute(self._text("SELECT pg_advisory_lock(:k)"), {"k": self._key})

    def __exit__(self, *exc):
        self._conn.execute(self._text("SELECT pg_advisory_unlock(:k)"), {"k": self._key})
        self._local.release()

    def close(self):
        self._conn.close()
        self._engine.dispose()


class _SingleProcessGuard:
    """Exclusive, non-blocking lock that keeps a second process off an SQLite study."""

    def __init__(self, path, storage_masked):
        self._fd = os.open(str(path), os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(self._fd, 64, 0).decode(errors="replace").strip() or "?"
            os.close(self._fd)
            raise UsageError(
                f"another process (pid {holder}) is already tuning the SQLite study "
                f"{storage_masked}; SQLite allows one writer at a time, so several workers on "
                f"it get 'database is locked' errors and can lose trial updates; wait for it "
                f"to finish, or run several workers with --jobs K (journal file) or "
                f"--storage postgresql://...") from None
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, str(os.getpid()).encode(), 0)

    def close(self):
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)


def budget_lock(spec, study_name):
    """Return the lock that serialises trial creation among the study's workers.

    Parameters
    ----------
    spec : StorageSpec
        The study's storage.
    study_name : str
        The study name (PostgreSQL locks are per study).

    Returns
    -------
    lock : context manager with a ``close()`` method
        Held while a worker counts trials and asks for a new one.
    """
    if spec.kind == "sqlite":
        path = Path(spec.url.split(":///", 1)[1])
        guard = _SingleProcessGuard(path.with_name(path.name + ".lock"), spec.masked)
        lock = _ThreadLock()
        lock.close = guard.close
        return lock
    if spec.kind == "journal":
        return _FileLock(spec.url + ".budget-lock")
    try:
        return _PostgresLock(spec.url, study_name)
    except Exception as err:
        raise DataError(f"cannot lock study {study_name!r} in {spec.masked}: "
                        f"{scrub(str(err).splitlines()[0], spec.url)}; check that the server "
                        f"is reachable.") from None


# --------------------------------------------------------------------------- samplers
class _GridSampler(optuna.samplers.GridSampler):
    """Grid sampler for an ask-and-tell loop.

    Optuna's grid sampler calls ``study.stop()`` once the grid is covered, which only works
    inside ``Study.optimize``; here the trial budget (capped at the grid size) stops workers.
    """

    def after_trial(self, study, trial, state, values):
        """Let the budget, not ``study.stop()``, end the search."""
        with contextlib.suppress(RuntimeError):
            super().after_trial(study, trial, state, values)


def make_sampler(name, *, seed=None, space=None):
    """Build an Optuna sampler by name.

    Parameters
    ----------
    name : {"tpe", "random", "cmaes", "grid"}
        The sampler.
    seed : int | None
        Its seed.
    space : SearchSpace | None
        Needed by the grid sampler.

    Returns
    -------
    sampler : optuna.samplers.BaseSampler
        The sampler.
    """
    if name not in _SAMPLERS:
        raise ParameterError(f"sampler={name!r} is not a valid option; it must be one of "
                             f"{list(_SAMPLERS)}; pick one of them.")
    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "grid":
        return _GridSampler(space.grid(), seed=seed)
    try:
        import cmaes  # noqa: F401
    except ImportError:
        raise ParameterError("sampler='cmaes' needs the package 'cmaes', which is not "
                             "installed; install it with `pip install cmaes` or use --sampler "
                             "tpe.") from None
    return optuna.samplers.CmaEsSampler(seed=seed)


def make_pruner(name, *, n_steps=None):
    """Build an Optuna pruner by name.

    Parameters
    ----------
    name : {"median", "hyperband", "none"}
        The pruner.
    n_steps : int | None
        Intermediate values per trial (subjects x folds); Hyperband's ``max_resource``.

    Returns
    -------
    pruner : optuna.pruners.BasePruner
        The pruner.
    """
    if name not in _PRUNERS:
        raise ParameterError(f"pruner={name!r} is not a valid option; it must be one of "
                             f"{list(_PRUNERS)}; pick one of them.")
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=0)
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1,
                                              max_resource=n_steps or "auto",
                                              reduction_factor=3)
    return optuna.pruners.NopPruner()


def create_or_load_study(storage, study_name, *, direction="maximize", sampler=None,
                         pruner=None, masked=None):
    """Create the study, or load it if it exists (how a re-run resumes).

    Parameters
    ----------
    storage : optuna.storages.BaseStorage
        From :func:`open_storage`.
    study_name : str
        The study's name.
    direction : {"maximize", "minimize"}
        Optimisation direction; an existing study must have the same.
    sampler, pruner : optional
        Passed to :func:`optuna.create_study`.
    masked : str | None
        The storage location for messages.

    Returns
    -------
    study : optuna.Study
        The study.
    """
    study = optuna.create_study(storage=storage, study_name=study_name, direction=direction,
                                sampler=sampler, pruner=pruner, load_if_exists=True)
    if study.direction.name.lower() != direction:
        raise ParameterError(
            f"study {study_name!r} in {masked or 'the storage'} was created to "
            f"{study.direction.name.lower()}, but this run asks to {direction}; the direction of "
            f"a study cannot change; pick another --study-name.")
    return study


# --------------------------------------------------------------------------- the worker loop
def _heartbeat_enabled(storage):
    return isinstance(storage, BaseHeartbeat) and storage.get_heartbeat_interval() is not None


class _Heartbeat:
    """Background thread recording a running trial's heartbeat."""

    def __init__(self, storage, trial_id):
        self._storage = storage
        self._trial_id = trial_id
        self._stop = threading.Event()
        self._thread = None

    def __enter__(self):
        if _heartbeat_enabled(self._storage):
            interval = self._storage.get_heartbeat_interval()
            self._storage.record_heartbeat(self._trial_id)

            def beat():
                while not self._stop.wait(interval):
                    try:
                        self._storage.record_heartbeat(self._trial_id)
                    except Exception as err:  # a transient storage hiccup must not kill it
                        logger.debug("heartbeat of trial id %d failed: %r", self._trial_id,
                                     err)

            self._thread = threading.Thread(target=beat, daemon=True,
                                            name="physioemo-heartbeat")
            self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        if self._thread is not None:
            self._thread.join()


def fail_stale_trials(study):
    """Fail the running trials whose heartbeat stopped, and re-queue them.

    Parameters
    ----------
    study : optuna.Study
        The study.
    """
    if _heartbeat_enabled(study._storage):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.storages.fail_stale_trials(study)


def recover_orphans(study, retry):
    """Fail and re-queue every running trial (only safe when no other process can run one).

    Parameters
    ----------
    study : optuna.Study
        The study (SQLite, guarded by :func:`budget_lock`).
    retry : callable
        The retry callback.

    Returns
    -------
    n : int
        Trials re-queued.
    """
    n = 0
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        with contextlib.suppress(optuna.exceptions.UpdateFinishedTrialError):
            if study._storage.set_trial_state_values(trial._trial_id, state=TrialState.FAIL):
                logger.warning("trial %d was left running by an interrupted run", trial.number)
                retry(study, study._storage.get_trial(trial._trial_id))
                n += 1
    return n


def count_lineages(trials):
    """Count original trials: a trial and its retries count once.

    Parameters
    ----------
    trials : list of optuna.trial.FrozenTrial
        The study's trials.

    Returns
    -------
    n : int
        Trials that are not retries of an earlier trial.
    """
    return sum(1 for t in trials if retried_from(t) is None)


def retried_from(trial):
    """Return the number of the original trial that ``trial`` retries, or ``None``."""
    return trial.system_attrs.get("failed_trial")


def run_worker(study, objective, *, n_trials, lock, retry, timeout=None, poll_s=1.0):
    """Run trials until the study holds ``n_trials`` of them (counting retries once).

    Parameters
    ----------
    study : optuna.Study
        The study (shared with other workers through its storage).
    objective : callable
        ``objective(trial) -> float``; raises :class:`optuna.TrialPruned` to prune.
    n_trials : int
        Trials in the whole study, over all workers and runs.
    lock : context manager
        From :func:`budget_lock`.
    retry : callable
        Called as ``retry(study, frozen_trial)`` when a trial fails.
    timeout : float | None
        Seconds after which this worker starts no new trial.
    poll_s : float
        Seconds between checks while waiting for other workers' running trials.

    Returns
    -------
    counts : dict
        Trials this worker finished, by state name.
    """
    start = time.monotonic()
    counts = {"COMPLETE": 0, "PRUNED": 0, "FAIL": 0}
    said_waiting = False
    while True:
        if timeout is not None and time.monotonic() - start > timeout:
            logger.info("timeout of %.0f s reached; no new trials from this worker", timeout)
            break
        fail_stale_trials(study)
        with lock:
            trials = study.get_trials(deepcopy=False)
            waiting = any(t.state == TrialState.WAITING for t in trials)
            trial = None
            if waiting or count_lineages(trials) < n_trials:
                with warnings.catch_warnings():
                    # Optuna warns that heartbeats are meant for Study.optimize; this loop
                    # runs them itself (see _Heartbeat).
                    warnings.simplefilter("ignore", UserWarning)
                    trial = study.ask()
        if trial is None:
            running = [t.number for t in trials if t.state == TrialState.RUNNING]
            if not running:
                break
            if not said_waiting:
                logger.info("all %d trials started; waiting for running trial(s) %s to finish "
                            "(or go stale and be retried)", n_trials, running)
                said_waiting = True
            time.sleep(poll_s)
            continue
        said_waiting = False
        state = _run_trial(study, trial, objective, retry)
        counts[state.name] += 1
    return counts


def _run_trial(study, trial, objective, retry):
    retried = retried_from(study._storage.get_trial(trial._trial_id))
    if retried is not None:
        # The original trial's number names the lineage (its work folder is reused); an
        # original trial is its own lineage, which saves a storage write per trial.
        trial.set_user_attr("lineage", retried)
    logger.info("trial %d started%s: %s", trial.number,
                f" (retry of trial {retried})" if retried is not None else "",
                trial.params or "sampling")
    t0 = time.monotonic()
    value, state, error = None, TrialState.COMPLETE, None
    with _Heartbeat(study._storage, trial._trial_id):
        try:
            value = objective(trial)
        except optuna.TrialPruned as exc:
            state, error = TrialState.PRUNED, exc
        except (PhysioEmoError, KeyboardInterrupt) as exc:
            # A user error would fail every trial the same way, and Ctrl-C means stop:
            # record the trial as failed (re-queued after Ctrl-C) and stop this worker.
            trial.set_user_attr("error", repr(exc)[:1000])
            study.tell(trial, state=TrialState.FAIL)
            if isinstance(exc, KeyboardInterrupt):
                retry(study, study._storage.get_trial(trial._trial_id))
            raise
        except Exception as exc:
            logger.warning("trial %d raised %r", trial.number, exc,
                           exc_info=logger.isEnabledFor(10))
            trial.set_user_attr("error", repr(exc)[:1000])
            state, error = TrialState.FAIL, exc
    if state == TrialState.COMPLETE:
        frozen = study.tell(trial, value)
        state = frozen.state
    else:
        frozen = study.tell(trial, state=state)
    elapsed = time.monotonic() - t0
    if state == TrialState.COMPLETE:
        best = study.best_trial
        logger.info("trial %d finished in %.1f s: value %.4g (best: trial %d, %.4g)",
                    trial.number, elapsed, frozen.value, best.number, best.value)
    elif state == TrialState.PRUNED:
        logger.info("trial %d pruned after %.1f s: %s", trial.number, elapsed, error)
    else:
        retry(study, study._storage.get_trial(trial._trial_id))
    return state


def study_summary(study):
    """Return counts by state and the best trial, as plain data.

    Parameters
    ----------
    study : optuna.Study
        The study.

    Returns
    -------
    summary : dict
        ``n_trials`` by state, ``n_lineages``, ``best_trial`` (number, value, params).
    """
    trials = study.get_trials(deepcopy=False)
    by_state = {}
    for t in trials:
        by_state[t.state.name] = by_state.get(t.state.name, 0) + 1
    summary = {"trials_by_state": by_state, "n_lineages": count_lineages(trials),
               "best_trial": None,
               "summarised": datetime.datetime.now(datetime.timezone.utc).isoformat()}
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    if complete:
        best = study.best_trial
        summary["best_trial"] = {"number": best.number, "value": best.value,
                                 "params": best.params}
    return summary
