"""`tongxin db ...`: the database itself. `db backup FILE` (SQLite's online
backup, safe while `tongxin serve` runs), `db check FILE` (would this file
work after a restore?), `db migrate` (the schema) and `db copy` (an office's
data between SQLite and PostgreSQL)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from bot.cli.common import (
    CliError,
    add_command,
    add_db_option,
    add_group,
    as_target,
    db_path,
    describe_db,
)


def register(sub: Any) -> None:
    actions = add_group(
        sub,
        "db",
        "Back up, check, migrate and copy the database.",
        "Back up the SQLite database while the bot runs, and check a backup before relying on it.",
        "tongxin db backup /var/backups/tongxin/tongxin-$(date +%F).db --verify",
    )
    backup = actions.add_parser(
        "backup",
        help="copy the database with SQLite's online backup (safe while serving)",
        description="Copy the database to FILE with SQLite's online backup API: a consistent "
        "copy while `tongxin serve` keeps writing (a plain file copy of a WAL database is "
        "not). FILE must not exist; it is created 0600.",
        epilog="example:\n  tongxin db backup /var/backups/tongxin/tongxin-2026-12-02.db --verify",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    backup.add_argument("file", metavar="FILE", help="the new backup file")
    backup.add_argument("--verify", action="store_true", help="run `db check` on the copy")
    add_db_option(backup)
    backup.set_defaults(handler=cmd_backup)
    check = actions.add_parser(
        "check",
        help="check that a backup (or database) file could be restored",
        description="Open FILE (default: the database itself) read-only: SQLite's integrity "
        "check, a schema version this tongxin can use, the tables and how many rows they hold. "
        "Exit status 1 on a problem.",
        epilog="example:\n  tongxin db check /var/backups/tongxin/tongxin-2026-12-02.db",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    check.add_argument("file", metavar="FILE", nargs="?", help="backup file (default: --db)")
    add_db_option(check)
    check.set_defaults(handler=cmd_check)
    migrate = add_command(
        actions,
        "migrate",
        "bring the schema to this release's version (servers also do it at start)",
        "tongxin db migrate --db postgresql://tongxin:secret@db.example:5432/tongxin",
    )
    migrate.set_defaults(handler=cmd_migrate)
    copy = add_command(
        actions,
        "copy",
        "copy every table into an empty database, verified by row counts and checksums",
        "tongxin db copy --from ~/.local/share/tongxin/tongxin.db "
        "--to postgresql://tongxin:secret@db.example:5432/tongxin",
    )
    copy.add_argument("--from", dest="source", required=True, metavar="PATH|URL")
    copy.add_argument("--to", dest="target", required=True, metavar="PATH|URL")
    copy.set_defaults(handler=cmd_copy)


def _sqlite_source(args: argparse.Namespace) -> Path:
    source = db_path(args)
    if not isinstance(source, Path):
        raise CliError("the database is PostgreSQL: back it up with pg_dump")
    return source


def cmd_backup(args: argparse.Namespace) -> int:
    from flows.store_backup import BackupError, backup_sqlite

    source, target = _sqlite_source(args), Path(args.file)
    try:
        seconds = backup_sqlite(source, target)
    except BackupError as exc:
        raise CliError(str(exc)) from exc
    size = target.stat().st_size
    print(f"backed up {source} to {target} ({size / 1e6:.1f} MB in {seconds:.1f} s)")
    return _report(target) if args.verify else 0


def cmd_check(args: argparse.Namespace) -> int:
    return _report(Path(args.file) if args.file else _sqlite_source(args))


def _report(path: Path) -> int:
    from flows.store_backup import check_backup

    found = check_backup(path)
    for problem in found.problems:
        print(f"{path}: {problem}", file=sys.stderr)
    if not found.ok:
        print(f"{path}: NOT usable for a restore", file=sys.stderr)
        return 1
    rows = ", ".join(f"{n} {table}" for table, n in found.counts.items())
    print(
        f"{path}: ok: integrity ok, schema version {found.schema_version}, {rows}; "
        f"newest ticket {found.newest_ticket or '-'}"
    )
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    from bot.cli.store_access import domain_errors
    from flows.store import Store
    from flows.store_backend import database_errors
    from flows.workspace_store import WorkspaceStore

    target = db_path(args)
    try:
        with domain_errors():
            store = Store(target, migrate=False)
            try:
                before = store.schema_version()
                applied = store.migrate()
                WorkspaceStore(store)
                after = store.schema_version()
            finally:
                store.close()
    except database_errors(OSError) as exc:
        raise CliError(f"database {describe_db(target)}: {exc}") from exc
    if applied:
        print(f"{describe_db(target)}: schema version {before} → {after}")
    else:
        print(f"{describe_db(target)}: schema version {after}, up to date")
    return 0


def cmd_copy(args: argparse.Namespace) -> int:
    from bot.cli.store_access import domain_errors
    from flows.store import Store
    from flows.store_backend import database_errors
    from flows.store_copy import copy_store
    from flows.workspace_store import WorkspaceStore

    source_at, target_at = as_target(args.source), as_target(args.target)
    if str(source_at) == str(target_at):
        raise CliError("--from and --to name the same database")
    try:
        with domain_errors():
            source = Store(source_at, read_only=True)
            try:
                target = Store(target_at)
                try:
                    WorkspaceStore(target)
                    report = copy_store(source, target)
                finally:
                    target.close()
            finally:
                source.close()
    except database_errors(OSError) as exc:
        raise CliError(f"copy {describe_db(source_at)} → {describe_db(target_at)}: {exc}") from exc
    for t in report:
        print(f"{t.table:<20} {t.rows:>8} rows  sha256 {t.checksum[:16]}  ok")
    total = sum(t.rows for t in report)
    print(f"copied {total} rows in {len(report)} tables to {describe_db(target_at)}; verified")
    return 0
