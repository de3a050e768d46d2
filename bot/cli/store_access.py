"""Opening the store and the reply texts for the staff commands, and turning
their domain errors into clean CLI errors."""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from bot.cli.common import CliError, db_path

if TYPE_CHECKING:
    from flows.deadlines import Deadlines
    from flows.replies import Replies
    from flows.store import Store


def add_actor_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--actor",
        metavar="NAME",
        default=None,
        help="who makes the change, for the audit trail (default: $USER or 'staff')",
    )


def actor_of(args: argparse.Namespace) -> str:
    return str(getattr(args, "actor", None) or os.environ.get("USER") or "staff")


@contextmanager
def domain_errors() -> Iterator[None]:
    """Store, staff and replies errors are the user's to fix: report them cleanly."""
    from flows.replies import RepliesError
    from flows.staff import StaffInputError
    from flows.store import StoreError

    try:
        yield
    except (StoreError, StaffInputError, RepliesError) as exc:
        raise CliError(str(exc)) from exc


@contextmanager
def open_store(args: argparse.Namespace, *, read_only: bool = False) -> Iterator[Store]:
    """The store at --db. `read_only` (commands that only read): the file must
    exist, and it is opened without the write lock, so a read-only folder works."""
    from flows.store import Store

    path = db_path(args)
    if read_only and not path.is_file():
        raise CliError(f"no database at {path} (check --db or $TONGXIN_DB)")
    try:
        with domain_errors():
            store = Store(path, read_only=read_only)
    except (sqlite3.Error, OSError) as exc:
        raise CliError(f"cannot open database {path}: {exc}") from exc
    if not read_only:
        store.set_due_rule(load_deadlines(args).rule())
    try:
        with domain_errors():
            yield store
    except sqlite3.Error as exc:
        raise CliError(f"database {path}: {exc}") from exc
    finally:
        store.close()


def load_deadlines(args: argparse.Namespace) -> Deadlines:
    """Due times from the data folder (kinds without one: TONGXIN_OVERDUE_HOURS)."""
    from bot.cli.common import bot_settings
    from flows.deadlines import DeadlineError, Deadlines

    settings = bot_settings(args)
    try:
        return Deadlines.load(settings.data_dir).with_default_resolve(settings.overdue_hours)
    except DeadlineError as exc:
        raise CliError(str(exc)) from exc


def load_replies() -> Replies:
    from flows.paths import default_data_dir
    from flows.replies import Replies

    with domain_errors():
        return Replies.load(default_data_dir() / "replies")


def try_load_replies() -> Replies | None:
    """Reply texts for labels only: a broken replies folder must not hide tickets."""
    try:
        return load_replies()
    except CliError:
        return None


def print_json(value: Any) -> None:
    json.dump(value, sys.stdout, ensure_ascii=False, indent=2)
    sys.stdout.write("\n")
