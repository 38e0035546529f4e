import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
FAKE = f"{HERE / 'fake_runner.py'}:FakeRunner"


def _load(name):
    spec = importlib.util.spec_from_file_location(f"_physioemo_tests_{name}", HERE / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def fake_runner():
    """The fake runner module (its ``score`` is the oracle of the objective)."""
    return _load("fake_runner")


@pytest.fixture(scope="session")
def postgres_server():
    """A private PostgreSQL server on 127.0.0.1, stopped at teardown."""
    pg = _load("pg_server")
    bindir, reason = pg.find_bindir()
    if bindir is None:
        pytest.skip(reason)
    server = pg.PostgresServer(bindir)
    try:
        server.start()
    except (RuntimeError, OSError, subprocess.SubprocessError) as err:
        server.stop()
        pytest.skip(f"PostgreSQL binaries found in {bindir} but the server did not start: "
                    f"{err}")
    yield server
    server.stop()


@pytest.fixture
def space_file(tmp_path):
    path = tmp_path / "space.yaml"
    path.write_text("sigma: {type: float, low: 0.1, high: 1.5}\n"
                    "graph: {type: categorical, choices: [G0, G1, G2]}\n"
                    "epochs: 1\n")
    return path


@pytest.fixture(scope="session")
def fake_spec():
    """``--runner`` value of the fake runner."""
    return FAKE


@pytest.fixture
def start_worker():
    """Start `physioemo tune` worker processes on the fake runner; kill leftovers after."""
    procs = []

    def start(space, out, *extra, env=None):
        cmd = [sys.executable, "-m", "physioemo.cli.main", "tune", "--runner", FAKE,
               "--search-space", str(space), "--out", str(out), "--no-plots",
               "--heartbeat-interval", "1", "--grace-period", "3", "-q", *map(str, extra)]
        proc = subprocess.Popen(cmd, cwd=ROOT, env={**os.environ, **(env or {})},
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
