"""`tongxin db ...`: the database itself. `db backup FILE` (SQLite's online
backup, safe while `tongxin serve` runs) and `db check FILE` (would this file
work after a restore?)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from bot.cli.common import CliError, add_db_option, add_group, db_path


def register(sub: Any) -> None:
    actions = add_group(
        sub,
        "db",
        "Back up and check the database.",
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


def _sqlite_source(args: argparse.Namespace) -> Path:
    source = db_path(args)
    if str(source).startswith(("postgresql://", "postgres://")):
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
