import json
import os
import signal
import time

import optuna
import pytest
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState

from physioemo.exceptions import DataError, ParameterError, UsageError
from physioemo.tuning import study as st


@pytest.mark.parametrize("url, masked", [
    ("postgresql://bob:s3cr@t@db:5432/x", "postgresql://bob:***@db:5432/x"),
    ("postgresql+psycopg2://u:pw@h/db?sslmode=require",
     "postgresql+psycopg2://u:***@h/db?sslmode=require"),
    ("postgresql://h/db?user=u&password=pw&x=1", "postgresql://h/db?user=u&password=***&x=1"),
    ("postgresql://u@h/db", "postgresql://u@h/db"),
    ("sqlite:////tmp/a.db", "sqlite:////tmp/a.db"),
    ("/tmp/study.journal", "/tmp/study.journal"),
])
def test_mask_url(url, masked):
    assert st.mask_url(url) == masked


def test_scrub_removes_every_copy_of_the_password():
    url = "postgresql://bob:hunter2@db/x"
    assert st.scrub("auth failed for bob (hunter2) hunter2", url) == \
        "auth failed for bob (***) ***"


def test_resolve_storage_defaults(tmp_path):
    spec = st.resolve_storage(None, tmp_path)
    assert (spec.kind, spec.url) == ("sqlite", f"sqlite:///{tmp_path / 'study.db'}")
    assert not spec.multi_process
    spec = st.resolve_storage(None, tmp_path, jobs=2)
    assert (spec.kind, spec.url) == ("journal", str(tmp_path / "study.journal"))
    # A study begun with --jobs 2 stays in its journal file when resumed with --jobs 1.
    (tmp_path / "study.journal").touch()
    assert st.resolve_storage(None, tmp_path).kind == "journal"
    assert st.resolve_storage(str(tmp_path / "x.log"), tmp_path).kind == "journal"


def test_resolve_storage_refuses_sqlite_for_several_processes(tmp_path):
    with pytest.raises(UsageError, match="SQLite, which cannot serve --jobs 2.*database is "
                                         "locked.*postgresql"):
        st.resolve_storage(f"sqlite:///{tmp_path}/a.db", tmp_path, jobs=2)
    (tmp_path / "study.db").touch()
    with pytest.raises(UsageError, match="--jobs 3 needs a storage.*SQLite.*--jobs 1"):
        st.resolve_storage(None, tmp_path, jobs=3)


def test_resolve_storage_postgres_and_bad_scheme(tmp_path):
    spec = st.resolve_storage("postgres://u:pw@h:5/db", tmp_path)
    assert spec.kind == "rdb" and spec.multi_process
    assert spec.url == "postgresql+psycopg2://u:pw@h:5/db"
    assert spec.masked == "postgresql+psycopg2://u:***@h:5/db"
    with pytest.raises(ParameterError, match=r"mysql://u:\*\*\*@h/db has an unsupported "
                                             r"scheme 'mysql'.*PostgreSQL"):
        st.resolve_storage("mysql://u:pw@h/db", tmp_path)


def test_unreachable_storage_is_one_clear_masked_message(tmp_path):
    spec = st.resolve_storage("postgresql://lab:topsecret@127.0.0.1:1/optuna", tmp_path)
    with pytest.raises(DataError, match=r"cannot open the study storage "
                                        r"postgresql\+psycopg2://lab:\*\*\*@127\.0\.0\.1:1/"
                                        r"optuna: .*check host, port") as info:
        st.open_storage(spec)
    assert "topsecret" not in str(info.value)


def test_sqlite_refuses_a_second_process(tmp_path):
    spec = st.resolve_storage(None, tmp_path)
    st.open_storage(spec)
    lock = st.budget_lock(spec, "s")
    try:
        # flock locks belong to the open file, so a second open in this process stands in
        # for a second process.
        with pytest.raises(UsageError, match=rf"another process \(pid {os.getpid()}\) is "
                                             r"already tuning.*one writer at a time"):
            st.budget_lock(spec, "s")
    finally:
        lock.close()
    st.budget_lock(spec, "s").close()  # free again once released


@pytest.mark.filterwarnings("ignore:Heartbeat of storage:UserWarning")
def test_journal_heartbeat_stale_trial_is_failed_and_retried(tmp_path):
    storage = st.open_storage(st.resolve_storage(str(tmp_path / "j.journal"), tmp_path),
                              heartbeat_interval=1, grace_period=5)
    study = optuna.create_study(storage=storage, study_name="s", direction="maximize")
    dead, alive = study.ask(), study.ask()
    dead.suggest_float("x", 0.0, 1.0)
    alive.suggest_float("x", 0.0, 1.0)
    storage.record_heartbeat(dead._trial_id)
    storage.record_heartbeat(alive._trial_id)
    # The dead worker's last heartbeat was 10 s ago (grace period 5 s).
    storage.set_trial_system_attr(dead._trial_id, "physioemo:heartbeat", time.time() - 10)
    st.fail_stale_trials(study)
    trials = study.get_trials()
    assert [t.state for t in trials] == [TrialState.FAIL, TrialState.RUNNING,
                                         TrialState.WAITING]
    retry = trials[2]
    assert retry.params == trials[0].params
    assert st.retried_from(retry) == 0 and st.count_lineages(trials) == 2
    assert "physioemo:heartbeat" not in retry.system_attrs


@pytest.mark.filterwarnings("ignore:Heartbeat of storage:UserWarning")
def test_retry_callback_stops_after_max_retry(tmp_path):
    storage = st.open_storage(st.resolve_storage(None, tmp_path))
    study = optuna.create_study(storage=storage, study_name="s")
    retry = st.RetryCallback(max_retry=2)
    trial = study.ask()
    trial.suggest_int("k", 1, 9)
    study.tell(trial, state=TrialState.FAIL)
    for _ in range(3):
        failed = study.get_trials()[-1]
        if failed.state == TrialState.WAITING:
            t = study.ask()
            study.tell(t, state=TrialState.FAIL)
            failed = study.get_trials()[-1]
        retry(study, failed)
    states = [t.state for t in study.get_trials()]
    # The original plus exactly two retries, all failed; no third retry was queued.
    assert states == [TrialState.FAIL] * 3
    assert [t.params for t in study.get_trials()] == [trial.params] * 3


# ------------------------------------------------------------ several worker processes
def _storage_for(kind, tmp_path, request):
    """Storage URL and study name for this test (the PostgreSQL server is shared)."""
    name = request.node.name
    if kind == "journal":
        path = tmp_path / "shared.journal"
        return str(path), name, lambda: JournalStorage(JournalFileBackend(str(path)))
    server = request.getfixturevalue("postgres_server")
    url = server.url()
    spec = st.resolve_storage(url, tmp_path)
    return url, name, lambda: spec.url


def _load(name, open_storage):
    return optuna.load_study(study_name=name, storage=open_storage())


def _wait(proc, timeout=90):
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err


KINDS = ["journal", pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.mark.parametrize("kind", KINDS)
def test_two_workers_run_exactly_n_trials(kind, tmp_path, request, space_file, start_worker):
    storage, name, opener = _storage_for(kind, tmp_path, request)
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    log = tmp_path / "folds.jsonl"
    env = {"FAKE_BARRIER": str(barrier), "FAKE_N_WORKERS": "2", "FAKE_LOG": str(log),
           "FAKE_SLEEP": "0.05", "FAKE_N_FOLDS": "1"}
    procs = [start_worker(space_file, tmp_path / f"out{i}", "--storage", storage,
                          "--study-name", name, "--n-trials", 12, "--pruner", "none",
                          env=env) for i in range(2)]
    for proc in procs:
        _wait(proc)
    trials = _load(name, opener).get_trials()
    assert [t.number for t in trials] == list(range(12))
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 12
    runs = [json.loads(line) for line in log.read_text().splitlines()]
    assert len(runs) == 12  # every trial ran once: none twice, none lost
    assert len({r["pid"] for r in runs}) == 2  # both workers took part
    # The two workers sample from distinct streams: no repeated configuration.
    assert len({json.dumps(t.params, sort_keys=True) for t in trials}) == 12
    for out in (tmp_path / "out0", tmp_path / "out1"):
        info = json.loads((out / "study.json").read_text())
        assert "s3cret-pw" not in (out / "study.json").read_text()
        for name in ("config.yaml", "run.json", "trials.csv"):
            assert "s3cret-pw" not in (out / name).read_text()
        assert info["storage_kind"] == ("journal" if kind == "journal" else "rdb")


@pytest.mark.parametrize("kind", KINDS)
def test_killed_worker_trial_is_retried(kind, tmp_path, request, space_file, start_worker):
    storage, name, opener = _storage_for(kind, tmp_path, request)
    log = tmp_path / "folds.jsonl"
    doomed = start_worker(space_file, tmp_path / "a", "--storage", storage,
                          "--study-name", name, "--n-trials", 3, "--pruner", "none",
                          env={"FAKE_SLEEP": "120", "FAKE_LOG": str(log)})
    t0 = time.monotonic()
    while not (log.exists() and log.read_text()) and time.monotonic() - t0 < 60:
        time.sleep(0.1)
    assert log.exists(), f"the first worker never started a trial: {doomed.poll()}"
    os.kill(doomed.pid, signal.SIGKILL)  # no chance to clean up
    doomed.wait()
    killed = json.loads(log.read_text().splitlines()[0])
    survivor = start_worker(space_file, tmp_path / "b", "--storage", storage,
                            "--study-name", name, "--n-trials", 3, "--pruner", "none",
                            env={"FAKE_LOG": str(log)})
    _wait(survivor)
    trials = _load(name, opener).get_trials()
    by_state = {s: [t for t in trials if t.state == s] for s in TrialState}
    assert len(by_state[TrialState.COMPLETE]) == 3
    assert [t.number for t in by_state[TrialState.FAIL]] == [0]
    assert not by_state[TrialState.RUNNING] and not by_state[TrialState.WAITING]
    retries = [t for t in trials if st.retried_from(t) == 0]
    assert len(retries) == 1 and retries[0].state == TrialState.COMPLETE
    assert retries[0].params == trials[0].params
    assert retries[0].user_attrs["lineage"] == 0  # reuses the original's work folder
    assert retries[0].params["sigma"] == killed["config"]["sigma"]
    assert st.count_lineages(trials) == 3


def test_sqlite_rerun_retries_the_trial_of_a_killed_run(tmp_path, space_file, start_worker):
    log = tmp_path / "folds.jsonl"
    out = tmp_path / "out"
    doomed = start_worker(space_file, out, "--n-trials", 2, "--pruner", "none",
                          env={"FAKE_SLEEP": "120", "FAKE_LOG": str(log)})
    t0 = time.monotonic()
    while not (log.exists() and log.read_text()) and time.monotonic() - t0 < 60:
        time.sleep(0.1)
    os.kill(doomed.pid, signal.SIGKILL)
    doomed.wait()
    # Re-running the same command resumes: no grace period needed, the SQLite study has
    # one process by construction, so a running trial found at start is an orphan.
    _wait(start_worker(space_file, out, "--n-trials", 2, "--pruner", "none"))
    trials = optuna.load_study(study_name="sd-strict-valence-weighted_f1",
                               storage=f"sqlite:///{out / 'study.db'}").get_trials()
    assert [t.state for t in trials] == [TrialState.FAIL, TrialState.COMPLETE,
                                         TrialState.COMPLETE]
    assert st.retried_from(trials[1]) == 0 and trials[1].params == trials[0].params
