"""`tongxin shell`: the bot in a terminal, for staff and for scripted conversations."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any, TextIO

from bot.cli.common import (
    CliError,
    add_command,
    as_target,
    build_core_or_exit,
    data_home,
    describe_db,
)
from flows.store_backend import DbTarget

SANDBOX_DB = "shell-sandbox.db"

QUIT_WORDS = frozenset({"/quit", "/exit"})


def register(sub: Any) -> None:
    parser = add_command(
        sub,
        "shell",
        "Talk to the bot in a terminal; with stdin not a terminal, one user message per line.",
        "tongxin shell --user zhang3\n"
        "  printf '你好\\n我想申请红色信贷\\n' | tongxin shell --user u1",
    )
    parser.description = (
        "Talk to the bot in a terminal; with stdin not a terminal, one user message per line. "
        "Uses its own sandbox database (in the cache folder) unless --db or $TONGXIN_DB names "
        "one, so trying the bot never files real tickets."
    )
    parser.add_argument("--user", default="shell-user", help="user id (default: shell-user)")
    parser.add_argument(
        "--debug",
        action="store_true",
        help="show intent, confidence, entities and the active form on each turn",
    )
    parser.set_defaults(handler=run_shell)


def shell_db(args: argparse.Namespace, environ: dict[str, str]) -> tuple[DbTarget, str]:
    """The database the shell talks to and where that choice came from: --db,
    then an explicit $TONGXIN_DB (scripts pair `tongxin shell` with `tickets
    list` that way), else the sandbox beside the NLU cache, never the
    production default."""
    from nlu.tokenizer import default_cache_dir

    given = getattr(args, "db", None)
    if given is not None:
        if not given.strip():
            raise CliError("--db needs a path")
        return as_target(given), "--db"
    explicit = environ.get("TONGXIN_DB", "").strip()
    if explicit:
        return as_target(explicit), "$TONGXIN_DB"
    return default_cache_dir(environ) / SANDBOX_DB, "sandbox"


def history_path(db: DbTarget) -> Path:
    """The shell's input history sits next to the SQLite file it talks to
    (and goes with `tongxin privacy forget`); with PostgreSQL, in tongxin's
    data folder."""
    return (db.parent if isinstance(db, Path) else data_home()) / "shell_history"


def _print_turn(turn: Any, out: TextIO, debug: bool) -> None:
    if debug:
        parse = turn.parse
        ents = ", ".join(f"{e.entity}={e.value}" for e in parse.entities) or "-"
        form = "-"
        if turn.state is not None and turn.state.form is not None:
            f = turn.state.form
            step = "confirm" if f.confirming else (f.asking or "-")
            form = f"{f.flow}/{step} slots={sorted(f.slots)}"
        print(
            f"[debug] intent={parse.intent.name} confidence={parse.intent.confidence:.2f} "
            f"entities: {ents} | form: {form} | nlu: {parse.backend}",
            file=out,
        )
    for reply in turn.replies:
        print(reply.text, file=out)
        print(file=out)
    out.flush()


def run_shell(args: argparse.Namespace) -> int:
    import os

    from bot.settings import Settings, SettingsError
    from flows.messages import IncomingMessage

    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    db, source = shell_db(args, dict(os.environ))
    try:
        settings = Settings.from_env(db=str(db))
    except SettingsError as exc:
        raise CliError(str(exc)) from exc
    core = build_core_or_exit(settings)
    # After the core loaded: an error that stops the shell stays the first line.
    if source == "sandbox":
        print(
            f"tongxin shell: sandbox database {db} (not the production one; "
            "--db PATH to use another)",
            file=sys.stderr,
        )
    else:
        print(f"tongxin shell: database {describe_db(db)} (from {source})", file=sys.stderr)
    user = str(args.user).strip() or "shell-user"

    def say(text: str) -> None:
        turn = core.dispatcher.turn(IncomingMessage(channel="shell", user_id=user, text=text))
        _print_turn(turn, sys.stdout, args.debug)

    try:
        if sys.stdin.isatty():
            _interactive(say, history_path(db))
        else:
            _piped(say)
    finally:
        core.close()
    return 0


def _piped(say: Any) -> None:
    # Line by line as they arrive (not the whole input first): a program driving the
    # shell through a pipe gets each answer before it sends the next message.
    for raw in sys.stdin.buffer:
        for line in raw.decode("utf-8", errors="replace").splitlines():
            if line.strip() in QUIT_WORDS:
                return
            say(line)


def _interactive(say: Any, history: Path) -> None:
    from prompt_toolkit import PromptSession
    from prompt_toolkit.history import FileHistory

    from nlu.entities import mask_personal_data

    class MaskedHistory(FileHistory):
        # The history file must not keep ID numbers or phones in clear.
        def store_string(self, string: str) -> None:
            super().store_string(mask_personal_data(string, mask_phones=True))

    history.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    history.touch(mode=0o600, exist_ok=True)
    session: PromptSession[str] = PromptSession(history=MaskedHistory(str(history)))
    print("同心 shell：输入消息与机器人对话，Ctrl-D 或 /quit 退出。\n")
    while True:
        try:
            line = session.prompt("您> ")
        except EOFError:
            print()
            return
        except KeyboardInterrupt:
            # Ctrl-C clears the line; the conversation and its form stay.
            print("（输入 /quit 或按 Ctrl-D 退出）")
            continue
        if line.strip() in QUIT_WORDS:
            return
        say(line)
