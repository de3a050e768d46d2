"""Backups of the SQLite file, part of the store's plumbing: SQLite's online
backup API (a consistent copy while `tongxin serve` keeps writing, which a
file copy of a WAL database is not) and a check that a backup can be
restored (integrity, schema version this tongxin can open, the tables there).
"""

from __future__ import annotations

import os
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path

from flows.store import MIGRATIONS

TABLES = ("tickets", "ticket_events", "volunteers", "outbox", "conversations", "kv")


class BackupError(Exception):
    """The backup could not be made."""


@dataclass(frozen=True)
class BackupCheck:
    path: Path
    problems: list[str] = field(default_factory=list)
    schema_version: int | None = None
    counts: dict[str, int] = field(default_factory=dict)
    newest_ticket: str | None = None

    @property
    def ok(self) -> bool:
        return not self.problems


def _read_only(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30.0)


def backup_sqlite(source: Path, target: Path) -> float:
    """Copy `source` to `target` (which must not exist) with the online backup
    API, a few pages at a time so that writers are never held up for long.
    Returns the seconds it took. The copy is one self-contained file (no WAL),
    created 0600: it holds the same personal data as the database."""
    if not source.is_file():
        raise BackupError(f"no database file at {source}")
    if target.exists():
        raise BackupError(f"{target} exists; choose a new file name")
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".part")
    started = time.monotonic()
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.close(fd)
    try:
        src = _read_only(source)
        dst = sqlite3.connect(partial)
        try:
            src.backup(dst, pages=256, sleep=0.005)
            dst.execute("PRAGMA journal_mode=DELETE")
        finally:
            dst.close()
            src.close()
        os.replace(partial, target)
    except (sqlite3.Error, OSError) as exc:
        partial.unlink(missing_ok=True)
        raise BackupError(f"backup of {source} failed: {exc}") from exc
    return time.monotonic() - started


def check_backup(path: Path) -> BackupCheck:
    """Whether `path` would work as the database after a restore."""
    if not path.is_file():
        return BackupCheck(path, [f"no file at {path}"])
    problems: list[str] = []
    counts: dict[str, int] = {}
    version = newest = None
    try:
        conn = _read_only(path)
        try:
            verdict = conn.execute("PRAGMA integrity_check").fetchone()[0]
            if verdict != "ok":
                problems.append(f"integrity check: {verdict}")
            version = int(conn.execute("PRAGMA user_version").fetchone()[0])
            if version == 0:
                problems.append("not a tongxin database (schema version 0)")
            elif version > len(MIGRATIONS):
                problems.append(
                    f"schema version {version} is newer than this tongxin ({len(MIGRATIONS)})"
                )
            names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
            for table in TABLES:
                if table not in names:
                    problems.append(f"table {table} is missing")
                    continue
                counts[table] = int(conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])
            if "tickets" in names:
                newest = conn.execute("SELECT MAX(created_at) FROM tickets").fetchone()[0]
        finally:
            conn.close()
    except sqlite3.Error as exc:
        problems.append(f"cannot read it as SQLite: {exc}")
    return BackupCheck(path, problems, version, counts, newest)
