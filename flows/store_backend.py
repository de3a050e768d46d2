"""The two databases under the one `Store`: an embedded SQLite file (the
default) and a PostgreSQL server that several `tongxin serve` hosts share.

The store's SQL is written once, portable (`?` placeholders, `ON CONFLICT`,
`RETURNING`, TEXT/INTEGER/REAL columns); a backend runs it and owns what has
to differ: connections, transactions and their locks, the schema version,
and the column types of DDL.

Locks. SQLite has one writer at a time, so every write transaction is
serialised and a read-then-write inside one is safe. PostgreSQL runs
transactions side by side; a write transaction takes a transaction-scoped
advisory lock on its `scope` (by default one scope for all writes, the same
guarantee as SQLite) and callers on the hot path name a narrower one (one
resident's turn, one platform message), so that different residents'
turns run in parallel on several hosts while one resident's stay in order.
"""

from __future__ import annotations

import hashlib
import os
import re
import sqlite3
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit, urlunsplit

if sys.platform != "win32":
    import fcntl
else:  # pragma: no cover - Windows has no flock(); SQLite's busy handler still serialises
    fcntl = None

POSTGRES_SCHEMES: tuple[str, ...] = ("postgresql://", "postgres://")
# The scope of write transactions that name none: all of them queue on it.
DEFAULT_SCOPE = "tongxin:writes"

DbTarget = str | Path


def database_errors(*more: type[Exception]) -> tuple[type[Exception], ...]:
    """What a failing database raises, on either backend (and `more`).
    psycopg is imported only by a PostgreSQL store (it costs 0.3 s): before
    that, no PostgreSQL error can be raised."""
    pg = sys.modules.get("psycopg")
    found: tuple[type[Exception], ...] = (
        (sqlite3.Error,) if pg is None else (sqlite3.Error, pg.Error)
    )
    return (*found, *more)


def is_postgres_url(target: DbTarget) -> bool:
    return isinstance(target, str) and target.startswith(POSTGRES_SCHEMES)


def redact(target: DbTarget) -> str:
    """The database for messages and logs: a URL's password never shows."""
    if not is_postgres_url(target):
        return str(target)
    parts = urlsplit(str(target))
    if parts.password is None:
        return str(target)
    host = parts.hostname or ""
    if parts.port is not None:
        host += f":{parts.port}"
    netloc = f"{parts.username or ''}:***@{host}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


@dataclass(frozen=True)
class Result:
    rows: list[dict[str, Any]]
    rowcount: int


_WRITE_PREFIXES = ("SELECT", "PRAGMA", "WITH")


def _is_read(sql: str) -> bool:
    return sql.lstrip()[:6].upper().startswith(_WRITE_PREFIXES) and "RETURNING" not in sql.upper()


# -- SQLite ---------------------------------------------------------------


def _create_private(path: Path) -> None:
    """A new database file is created 0600 (SQLite gives its WAL and shared
    memory files the same mode) and a new folder 0700: they hold personal data."""
    if not path.parent.exists():
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    os.close(fd)  # an empty file is an empty SQLite database


class SqliteBackend:
    """One SQLite file. Safe to share between threads of one process (a lock
    serialises use of the single connection) and between processes (WAL and
    `BEGIN IMMEDIATE`, writers queued on a lock file)."""

    kind = "sqlite"
    for_update = ""
    errors: tuple[type[Exception], ...] = (sqlite3.Error,)

    def __init__(self, path: Path, *, busy_timeout_s: float, read_only: bool) -> None:
        self.path = path
        self._lock = threading.RLock()
        self._depth = 0
        self._lock_file: IO[str] | None = None
        self.checkpoint_after_commit = False
        memory = str(path) == ":memory:"
        if read_only:
            if not path.is_file():
                raise FileNotFoundError(f"no database file at {path}")
            uri = f"{path.resolve().as_uri()}?mode=ro"
            self.conn = sqlite3.connect(
                uri, uri=True, timeout=busy_timeout_s, isolation_level=None, check_same_thread=False
            )
        else:
            if not memory:
                _create_private(path)
            self.conn = sqlite3.connect(
                str(path), timeout=busy_timeout_s, isolation_level=None, check_same_thread=False
            )
            if fcntl is not None and not memory:
                lock_path = path.with_name(path.name + ".lock")
                fd = os.open(lock_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
                self._lock_file = open(fd, "a", encoding="utf-8")  # noqa: SIM115 - held for the store's lifetime
        self.conn.row_factory = sqlite3.Row
        self.identity = None if memory else self.file_identity()
        if read_only:
            return
        # Two processes opening a new file at once both switch it to WAL; SQLite
        # may answer one of them "locked" at once, so take turns here too.
        with self._writer_turn():
            self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=NORMAL")
        self.conn.execute("PRAGMA foreign_keys=ON")
        # Erased personal data must not linger in free pages of the file (PIPL);
        # some SQLite builds default to off.
        self.conn.execute("PRAGMA secure_delete=ON")

    def file_identity(self) -> tuple[int, int]:
        st = os.stat(self.path)
        return (st.st_dev, st.st_ino)

    def close(self) -> None:
        with self._lock:
            self.conn.close()
            if self._lock_file is not None:
                self._lock_file.close()

    def checkpoint(self) -> None:
        with self._lock:
            self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    @contextmanager
    def transaction(
        self, scope: str | None = None, *, before: Callable[[], None] | None = None
    ) -> Iterator[None]:
        """A write transaction; nested use joins the outer one. `scope` is
        for PostgreSQL: SQLite has one writer at a time anyway."""
        with self._lock:
            if self._depth:
                self._depth += 1
                try:
                    yield
                finally:
                    self._depth -= 1
                return
            if before is not None:
                before()
            with self._writer_turn():
                self.conn.execute("BEGIN IMMEDIATE")
                self._depth = 1
                try:
                    yield
                except BaseException:
                    self._depth = 0
                    # SQLite has already rolled back after some errors (a full
                    # disk); a second ROLLBACK would hide the real error.
                    if self.conn.in_transaction:
                        self.conn.execute("ROLLBACK")
                    raise
                self._depth = 0
                self.conn.execute("COMMIT")
            if self.checkpoint_after_commit:
                self.checkpoint_after_commit = False
                self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    @contextmanager
    def _writer_turn(self) -> Iterator[None]:
        """Writers of all processes queue on a lock file before SQLite's own
        write lock. SQLite's busy handler polls with sleeps of up to 100 ms, which
        shows as a long tail when several server processes share the file; a
        blocked flock() wakes as soon as the holder lets go."""
        if self._lock_file is None or fcntl is None:
            yield
            return
        fcntl.flock(self._lock_file.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(self._lock_file.fileno(), fcntl.LOCK_UN)

    def execute(self, sql: str, params: tuple[Any, ...] = (), *, wait: bool = True) -> Result:
        """`wait` is for PostgreSQL (see PostgresBackend.transaction)."""
        with self._lock:
            if self._depth == 0 and not _is_read(sql):
                # A lone write is a transaction of its own, queued like the others.
                with self.transaction():
                    return self._run(sql, params)
            return self._run(sql, params)

    def _run(self, sql: str, params: tuple[Any, ...]) -> Result:
        cur = self.conn.execute(sql, params)
        rows = [dict(r) for r in cur.fetchall()] if cur.description else []
        return Result(rows, cur.rowcount)

    def execute_many(self, sql: str, rows: list[tuple[Any, ...]]) -> None:
        """Inside a transaction: one statement for many rows."""
        with self._lock:
            self.conn.executemany(sql, rows)

    def after_bulk_insert(self, table: str) -> None:
        """Rows copied in with their ids: SQLite hands out the next id itself."""

    def schema_version(self) -> int:
        with self._lock:
            return int(self.conn.execute("PRAGMA user_version").fetchone()[0])

    def set_schema_version(self, version: int) -> None:
        self.conn.execute(f"PRAGMA user_version={int(version)}")

    def ddl(self, statement: str) -> str:
        return statement

    def columns(self, table: str) -> list[str]:
        return [r["name"] for r in self._run(f"PRAGMA table_info({table})", ()).rows]

    def tables(self) -> list[str]:
        rows = self._run(
            "SELECT name FROM sqlite_master WHERE type = 'table' "
            "AND name NOT LIKE 'sqlite_%' ORDER BY name",
            (),
        ).rows
        return [r["name"] for r in rows]


# -- PostgreSQL -----------------------------------------------------------


@lru_cache(maxsize=2048)
def to_pyformat(sql: str) -> str:
    """`?` placeholders to psycopg's `%s` (and a literal `%` to `%%`),
    leaving quoted strings and identifiers alone."""
    out: list[str] = []
    quote = ""
    for ch in sql:
        if quote:
            out.append("%%" if ch == "%" else ch)
            if ch == quote:
                quote = ""
        elif ch in "'\"":
            quote = ch
            out.append(ch)
        elif ch == "?":
            out.append("%s")
        elif ch == "%":
            out.append("%%")
        else:
            out.append(ch)
    return "".join(out)


# Types are written in capitals (names in lower case: a column may well be
# called `text`), so only capitals are types here.
_PG_TYPES: tuple[tuple[re.Pattern[str], str], ...] = (
    # SQLite's rowid alias: an id the database hands out.
    (
        re.compile(r"\bINTEGER\s+PRIMARY\s+KEY(\s+AUTOINCREMENT)?\b"),
        "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY",
    ),
    (re.compile(r"\bINTEGER\b"), "BIGINT"),
    # PostgreSQL's REAL is 4 bytes: epoch seconds would lose minutes.
    (re.compile(r"\b(REAL|FLOAT)\b"), "DOUBLE PRECISION"),
    # Byte order, as SQLite compares: ids and ISO times sort the same on both.
    (re.compile(r"\bTEXT\b"), 'TEXT COLLATE "C"'),
)

# SQLite's instr() for the portable queries (PostgreSQL names it strpos).
_PG_FUNCTIONS: tuple[str, ...] = (
    "CREATE OR REPLACE FUNCTION instr(text, text) RETURNS integer"
    " LANGUAGE sql IMMUTABLE STRICT AS 'SELECT strpos($1, $2)'",
)


_QUOTED = re.compile(r"""("[^"]*"|'[^']*')""")


def pg_ddl(statement: str) -> str:
    """Portable DDL (TEXT, INTEGER, REAL) in PostgreSQL's types; quoted names
    and strings are left alone."""
    parts = _QUOTED.split(statement)
    for i in range(0, len(parts), 2):  # the even parts are outside quotes
        for pattern, replacement in _PG_TYPES:
            parts[i] = pattern.sub(replacement, parts[i])
    return "".join(parts)


def lock_key(scope: str | None) -> int:
    """A scope's advisory-lock key: a signed 64-bit hash, the same on every host."""
    digest = hashlib.blake2b((scope or DEFAULT_SCOPE).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


class PostgresBackend:
    """A PostgreSQL database through a psycopg connection pool. A transaction
    holds one pooled connection for its thread; a statement outside one
    borrows a connection and commits on its own."""

    kind = "postgresql"
    for_update = " FOR UPDATE"

    def __init__(self, url: str, *, busy_timeout_s: float, read_only: bool, pool_size: int) -> None:
        import psycopg
        from psycopg.rows import dict_row
        from psycopg_pool import ConnectionPool

        self.errors = (psycopg.Error,)
        self._psycopg = psycopg
        self.url = url
        self.read_only = read_only
        options = f"-c lock_timeout={int(busy_timeout_s * 1000)}"
        if read_only:
            options += " -c default_transaction_read_only=on"
        kwargs: dict[str, Any] = {
            "autocommit": True,
            "row_factory": dict_row,
            "options": options,
            "application_name": "tongxin",
        }
        # One plain connection first: a wrong address or password fails at
        # once with the server's reason, not after the pool's retries.
        try:
            psycopg.connect(url, connect_timeout=10, **kwargs).close()
        except psycopg.Error as exc:
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise psycopg.OperationalError(reason) from None
        self.pool: Any = ConnectionPool(
            url, min_size=1, max_size=pool_size, kwargs=kwargs, timeout=busy_timeout_s, open=False
        )
        self.pool.open(wait=True, timeout=busy_timeout_s)
        self._local = threading.local()

    def close(self) -> None:
        self.pool.close()

    def checkpoint(self) -> None:
        """Nothing to do: PostgreSQL's WAL is the server's (see docs/scaling.md)."""

    def _state(self) -> tuple[Any, int]:
        return getattr(self._local, "conn", None), getattr(self._local, "depth", 0)

    @property
    def in_transaction(self) -> bool:
        return self._state()[1] > 0

    @contextmanager
    def transaction(
        self, scope: str | None = None, *, before: Callable[[], None] | None = None
    ) -> Iterator[None]:
        conn, depth = self._state()
        if depth:
            self._local.depth = depth + 1
            try:
                yield
            finally:
                self._local.depth -= 1
            return
        if before is not None:
            before()
        conn = self.pool.getconn()
        # In pipeline mode: writes whose outcome the caller does not read
        # (`execute(wait=False)`) go out with the next statement that is read,
        # instead of a round trip each; a failed one fails the commit.
        piping = conn.pipeline()
        pipeline = piping.__enter__()
        self._local.conn, self._local.depth, self._local.pipeline = conn, 1, pipeline
        piped = True
        try:
            conn.execute("BEGIN")
            conn.execute(f"SELECT pg_advisory_xact_lock({lock_key(scope)})")
            yield
            conn.execute("COMMIT")
            piped = False
            piping.__exit__(None, None, None)
        except BaseException:
            if piped:
                with suppress(self._psycopg.Error):
                    piping.__exit__(None, None, None)
            if not conn.closed:
                # A broken connection fails here too: the pool replaces it.
                with suppress(self._psycopg.Error):
                    conn.execute("ROLLBACK")
            raise
        finally:
            self._local.conn, self._local.depth, self._local.pipeline = None, 0, None
            self.pool.putconn(conn)

    def execute(self, sql: str, params: tuple[Any, ...] = (), *, wait: bool = True) -> Result:
        conn, depth = self._state()
        query = to_pyformat(sql)
        if depth:
            cur = conn.execute(query, params)
            if not wait:
                return Result([], -1)
            self._local.pipeline.sync()
            return self._result(cur)
        with self.pool.connection() as conn:
            return self._result(conn.execute(query, params))

    @staticmethod
    def _result(cur: Any) -> Result:
        rows = cur.fetchall() if cur.description else []
        return Result(list(rows), cur.rowcount)

    def execute_many(self, sql: str, rows: list[tuple[Any, ...]]) -> None:
        """Inside a transaction: one statement for many rows (pipelined)."""
        conn, _depth = self._state()
        with conn.cursor() as cur:
            cur.executemany(to_pyformat(sql), rows)

    def after_bulk_insert(self, table: str) -> None:
        """Rows copied in with their ids: move the table's id sequence past them."""
        if "id" not in self.columns(table):
            return
        row = self.execute("SELECT pg_get_serial_sequence(?, 'id') AS seq", (table,)).rows
        if row and row[0]["seq"]:
            self.execute(
                f"SELECT setval(?, (SELECT COALESCE(MAX(id), 0) + 1 FROM {table}), false)",
                (row[0]["seq"],),
            )

    def _ensure_version_table(self) -> None:
        self.execute(
            "CREATE TABLE IF NOT EXISTS tongxin_schema (id INTEGER PRIMARY KEY CHECK (id = 1),"
            " version INTEGER NOT NULL)"
        )
        for statement in _PG_FUNCTIONS:
            self.execute(statement)

    def schema_version(self) -> int:
        exists = self.execute("SELECT to_regclass('tongxin_schema') IS NOT NULL AS e").rows
        if not exists or not exists[0]["e"]:
            return 0
        rows = self.execute("SELECT version FROM tongxin_schema WHERE id = 1").rows
        return int(rows[0]["version"]) if rows else 0

    def set_schema_version(self, version: int) -> None:
        self._ensure_version_table()
        self.execute(
            "INSERT INTO tongxin_schema(id, version) VALUES (1, ?) "
            "ON CONFLICT(id) DO UPDATE SET version = excluded.version",
            (version,),
        )

    def ddl(self, statement: str) -> str:
        return pg_ddl(statement)

    def columns(self, table: str) -> list[str]:
        rows = self.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = "
            "current_schema() AND table_name = ? ORDER BY ordinal_position",
            (table,),
        ).rows
        return [r["column_name"] for r in rows]

    def tables(self) -> list[str]:
        rows = self.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = "
            "current_schema() AND table_type = 'BASE TABLE' AND table_name <> 'tongxin_schema' "
            "ORDER BY table_name"
        ).rows
        return [r["table_name"] for r in rows]


def open_backend(
    target: DbTarget, *, busy_timeout_s: float, read_only: bool, pool_size: int = 8
) -> SqliteBackend | PostgresBackend:
    if is_postgres_url(target):
        return PostgresBackend(
            str(target), busy_timeout_s=busy_timeout_s, read_only=read_only, pool_size=pool_size
        )
    return SqliteBackend(Path(target), busy_timeout_s=busy_timeout_s, read_only=read_only)
