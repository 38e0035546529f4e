"""Start a private, throwaway PostgreSQL server on 127.0.0.1 (tests and benchmarks).

Uses the Debian server binaries (package ``postgresql``, e.g. ``postgresql-15``:
``/usr/lib/postgresql/<version>/bin``). PostgreSQL refuses to run as root, so as root the
server runs as the ``postgres`` user through ``runuser``. Nothing is installed here: when
the binaries are missing, :func:`find_bindir` says so and callers skip.
"""

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path


def find_bindir():
    """Return (bindir, None) or (None, reason)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0)
    if found:
        return str(Path(found[-1]).parent), None
    initdb = shutil.which("initdb")
    if initdb:
        return str(Path(initdb).parent), None
    return None, ("PostgreSQL server binaries not found (no /usr/lib/postgresql/*/bin/initdb "
                  "and no initdb on PATH); install the Debian package 'postgresql' "
                  "(apt-get install postgresql), as .ci/run does")


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class PostgresServer:
    """A private PostgreSQL server in a temporary folder.

    Parameters
    ----------
    bindir : str
        Folder with initdb, pg_ctl, psql.
    fast : bool
        Turn off fsync (fine for tests; benchmarks keep the durable default).
    """

    def __init__(self, bindir, *, fast=True):
        self.bindir = bindir
        self.fast = fast
        self.port = None
        self.root = None

    def _cmd(self, *args):
        cmd = [os.path.join(self.bindir, args[0]), *args[1:]]
        if os.geteuid() == 0:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        return cmd

    def _run(self, *args, timeout=60):
        res = subprocess.run(self._cmd(*args), capture_output=True, text=True, timeout=timeout)
        if res.returncode != 0:
            raise RuntimeError(f"{' '.join(args[:2])} failed ({res.returncode}): "
                               f"{res.stderr.strip() or res.stdout.strip()}")
        return res.stdout

    def start(self, database="optuna"):
        """Initialise, start and create ``database``; return the server (self)."""
        self.root = tempfile.mkdtemp(prefix="physioemo-pg-")
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")
        data = os.path.join(self.root, "data")
        self._run("initdb", "-D", data, "-A", "trust", "-U", "postgres", "--no-sync",
                  "-E", "UTF8")
        self.port = _free_port()
        opts = (f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.root} "
                f"-c max_connections=100")
        if self.fast:
            opts += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        self._run("pg_ctl", "-D", data, "-l", os.path.join(self.root, "log"), "-o", opts,
                  "-w", "-t", "60", "start", timeout=90)
        for _ in range(50):
            try:
                self._run("psql", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres",
                          "-d", "postgres", "-c", f"CREATE DATABASE {database}")
                break
            except RuntimeError:
                time.sleep(0.2)
        else:
            raise RuntimeError("could not create the database")
        self.database = database
        return self

    def url(self, password="s3cret-pw"):
        """URL with a password (trust auth ignores it; tests check it is masked)."""
        return f"postgresql://postgres:{password}@127.0.0.1:{self.port}/{self.database}"

    def stop(self):
        """Stop the server and delete its folder."""
        if self.root is None:
            return
        try:
            self._run("pg_ctl", "-D", os.path.join(self.root, "data"), "-m", "immediate",
                      "-w", "stop", timeout=60)
        finally:
            shutil.rmtree(self.root, ignore_errors=True)
            self.root = None
