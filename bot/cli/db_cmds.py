"""`tongxin db migrate` and `tongxin db copy`: the schema, and moving an
office's data between SQLite and PostgreSQL."""

from __future__ import annotations

import argparse
from typing import Any

from bot.cli.common import CliError, add_command, add_group, as_target, db_path, describe_db


def register(sub: Any) -> None:
    dsub = add_group(
        sub,
        "db",
        "the database: schema migrations, copying between SQLite and PostgreSQL",
        "The database behind --db / $TONGXIN_DB: a SQLite file or a PostgreSQL URL.",
        "tongxin db migrate --db postgresql://tongxin:secret@db.example:5432/tongxin",
    )
    p = add_command(
        dsub,
        "migrate",
        "bring the schema to this release's version (servers also do it at start)",
        "tongxin db migrate --db postgresql://tongxin:secret@db.example:5432/tongxin",
    )
    p.set_defaults(handler=cmd_migrate)
    p = add_command(
        dsub,
        "copy",
        "copy every table into an empty database, verified by row counts and checksums",
        "tongxin db copy --from ~/.local/share/tongxin/tongxin.db "
        "--to postgresql://tongxin:secret@db.example:5432/tongxin",
    )
    p.add_argument("--from", dest="source", required=True, metavar="PATH|URL")
    p.add_argument("--to", dest="target", required=True, metavar="PATH|URL")
    p.set_defaults(handler=cmd_copy)


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
