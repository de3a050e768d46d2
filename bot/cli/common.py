"""Pieces every CLI command shares: the --db option, clean errors, help epilogs."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flows.store_backend import DbTarget, is_postgres_url, redact

if TYPE_CHECKING:
    from bot.app import Core
    from bot.settings import Settings
    from nlu.training_data import TrainingDataError


class CliError(Exception):
    """A user-facing error: printed as `tongxin: error: ...`, exit status 2."""


def data_home() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "tongxin"


def as_target(value: str) -> DbTarget:
    """A `--db`/`$TONGXIN_DB` value: a PostgreSQL URL stays a string (a Path
    would fold its `//`), anything else is a SQLite file path."""
    value = value.strip()
    return value if is_postgres_url(value) else Path(value)


def default_db_path() -> DbTarget:
    """`$TONGXIN_DB` (a SQLite file or a PostgreSQL URL), else the embedded
    default `$XDG_DATA_HOME/tongxin/tongxin.db`."""
    env = os.environ.get("TONGXIN_DB", "").strip()
    if env:
        return as_target(env)
    return data_home() / "tongxin.db"


def db_missing(target: DbTarget) -> bool:
    """A SQLite file that is not there (a PostgreSQL database answers for itself)."""
    return isinstance(target, Path) and not target.is_file()


def describe_db(target: DbTarget) -> str:
    """For messages: a URL's password never shows."""
    return redact(target)


def add_db_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--db",
        metavar="PATH|URL",
        default=None,
        help="SQLite file or postgresql://user:password@host:port/dbname "
        "(default: $TONGXIN_DB or ~/.local/share/tongxin/tongxin.db)",
    )


def db_path(args: argparse.Namespace) -> DbTarget:
    given = getattr(args, "db", None)
    if given is None:
        return default_db_path()
    if not given.strip():
        # Falling back to $TONGXIN_DB here once erased a user from the wrong database.
        raise CliError("--db needs a path (an empty value would mean $TONGXIN_DB)")
    return as_target(given)


def add_command(
    sub: Any, name: str, help_text: str, example: str, **kwargs: Any
) -> argparse.ArgumentParser:
    """Add a subcommand whose help always carries an example (a test checks this)."""
    parser: argparse.ArgumentParser = sub.add_parser(
        name,
        help=help_text,
        description=help_text,
        epilog=f"example:\n  {example}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        **kwargs,
    )
    add_db_option(parser)
    return parser


def add_group(sub: Any, name: str, help_text: str, description: str, example: str) -> Any:
    """A command group (`tongxin tickets ...`): prints its help when called
    without an action; returns the subparsers to add the actions to."""
    group: argparse.ArgumentParser = sub.add_parser(
        name,
        help=help_text,
        description=description,
        epilog=f"example:\n  {example}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )

    def show_help(_args: argparse.Namespace) -> int:
        group.print_help()
        return 2

    group.set_defaults(handler=show_help)
    return group.add_subparsers(dest=f"{name}_command", metavar="ACTION")


def bot_settings(args: argparse.Namespace) -> Settings:
    """The bot's settings from the environment, `--db` over `$TONGXIN_DB`."""
    from bot.settings import Settings, SettingsError

    try:
        return Settings.from_env(db=str(db_path(args)))
    except SettingsError as exc:
        raise CliError(str(exc)) from exc


def build_core_or_exit(settings: Settings, **kwargs: Any) -> Core:
    """`build_core`, with a missing model, training data or word vectors as a
    CLI error (exit status 2) instead of a traceback."""
    from bot.app import build_core
    from flows.store import StoreError
    from flows.store_backend import database_errors
    from nlu.classifier import ModelError
    from nlu.training_data import TrainingDataError

    try:
        return build_core(settings, **kwargs)
    except ModelError as exc:
        raise CliError(str(exc)) from exc
    except database_errors(StoreError, OSError) as exc:
        raise CliError(f"cannot use database {describe_db(settings.db_path)}: {exc}") from exc
    except TrainingDataError as exc:
        raise data_error(exc) from None


def data_error(exc: TrainingDataError) -> CliError:
    """Unusable NLU data, with the first problems found, file and item each."""
    details = "".join(f"\n  {p}" for p in exc.problems[:20])
    return CliError(f"{exc}{details}")


def read_stdin_lines() -> list[str]:
    """Read stdin as UTF-8 lines; invalid bytes become U+FFFD so one bad line can't stop a batch."""
    data = sys.stdin.buffer.read()
    return data.decode("utf-8", errors="replace").splitlines()
