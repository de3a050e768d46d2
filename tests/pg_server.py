"""A real PostgreSQL server for the tests: Debian's binaries, `initdb` into a
temporary folder and `pg_ctl start` on a loopback port, as a non-root user
(PostgreSQL refuses to run as root: the tests run as root in CI, so the
server runs as the package's `postgres` user).

One server per test session; each test gets a fresh database copied from a
migrated template (`CREATE DATABASE ... TEMPLATE`, a file copy on the server).
"""

from __future__ import annotations

import glob
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import psycopg

USER = "tongxin"
# A password, so that the tests also see that it never shows in messages.
PASSWORD = "pg-secret-4711"
TEMPLATE = "tongxin_template"


def _bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), key=_version)
    if found:
        return found[-1]
    path = shutil.which(name)
    if path is None:
        raise RuntimeError(
            f"PostgreSQL's {name} not found: apt-get install postgresql (scripts/test.sh does)"
        )
    return path


def _version(path: str) -> int:
    part = Path(path).parts[-3]
    return int(part) if part.isdigit() else 0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PgServer:
    def __init__(self, *, durable: bool = False) -> None:
        self.port = _free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="tongxin-pg-"))
        self.data = self.dir / "data"
        self._as: list[str] = []
        if os.geteuid() == 0:
            account = pwd.getpwnam("postgres")
            os.chown(self.dir, account.pw_uid, account.pw_gid)
            # runuser lives in /usr/sbin, which a minimal PATH may lack.
            runuser = shutil.which("runuser", path=f"{os.environ.get('PATH', '')}:/usr/sbin:/sbin")
            self._as = [runuser or "runuser", "-u", "postgres", "--"]
        self.dir.chmod(0o700)
        pwfile = self.dir / "pw"
        pwfile.write_text(PASSWORD + "\n")
        if self._as:
            os.chown(pwfile, pwd.getpwnam("postgres").pw_uid, -1)
        self._run(
            _bin("initdb"),
            "-D",
            str(self.data),
            "-U",
            USER,
            f"--pwfile={pwfile}",
            "--auth=scram-sha-256",
            "--encoding=UTF8",
            "--locale=C.UTF-8",
        )
        pwfile.unlink()
        # The tests need no crash safety from the disk; the bench keeps it.
        settings = [
            "listen_addresses='127.0.0.1'",
            f"port={self.port}",
            f"unix_socket_directories='{self.dir}'",
            "max_connections=200",
            "shared_buffers=64MB",
        ]
        if not durable:
            settings += ["fsync=off", "full_page_writes=off", "synchronous_commit=off"]
        with open(self.data / "postgresql.conf", "a") as conf:
            conf.write("\n".join(settings) + "\n")
        self._run(_bin("pg_ctl"), "-D", str(self.data), "-l", str(self.dir / "log"), "-w", "start")
        self._names = itertools.count(1)
        self._template_ready = False

    def _run(self, *cmd: str) -> None:
        subprocess.run([*self._as, *cmd], check=True, capture_output=True, cwd=self.dir)

    def url(self, dbname: str = "postgres") -> str:
        return f"postgresql://{USER}:{PASSWORD}@127.0.0.1:{self.port}/{dbname}"

    def admin(self, sql: str) -> None:
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(sql)

    def fresh_database(self) -> str:
        """The URL of a new database with the current schema."""
        if not self._template_ready:
            from flows.store import Store
            from flows.workspace_store import WorkspaceStore

            self.admin(f"DROP DATABASE IF EXISTS {TEMPLATE}")
            self.admin(f"CREATE DATABASE {TEMPLATE}")
            store = Store(self.url(TEMPLATE))
            WorkspaceStore(store)
            store.close()
            self._template_ready = True
        name = f"t{os.getpid()}_{next(self._names)}"
        self.admin(f"CREATE DATABASE {name} TEMPLATE {TEMPLATE}")
        return self.url(name)

    def empty_database(self) -> str:
        name = f"e{os.getpid()}_{next(self._names)}"
        self.admin(f"CREATE DATABASE {name}")
        return self.url(name)

    def stop(self) -> None:
        try:
            self._run(_bin("pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop")
        finally:
            for _ in range(3):
                try:
                    shutil.rmtree(self.dir)
                    break
                except OSError:
                    time.sleep(0.2)


def database_text(store: Any) -> str:
    """Every value of every row of every table of a store, as text (both
    backends): what "never stored" is checked against on PostgreSQL, whose
    files belong to the server."""
    return "\n".join(
        repr(sorted(row.items()))
        for t in store.tables()
        for row in store._rows(f"SELECT * FROM {t}")
    )
