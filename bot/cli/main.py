"""Entry point of the `tongxin` command."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from bot.cli.common import CliError

# Each module defines `register(subparsers)`; heavy imports stay inside handlers
# so that `tongxin nlu parse` starts fast.
COMMAND_MODULES: tuple[str, ...] = (
    "bot.cli.nlu_cmds",
    "bot.cli.data_cmds",
    "bot.cli.faq_cmds",
    "bot.cli.shell_cmd",
    "bot.cli.tickets_cmds",
    "bot.cli.volunteers_cmds",
    "bot.cli.privacy_cmds",
    "bot.cli.outbox_cmds",
    "bot.cli.serve_cmd",
    "bot.cli.wechat_cmds",
    "bot.cli.telegram_cmds",
    "bot.cli.staff_cmds",
    "bot.cli.db_cmds",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tongxin",
        description="同心: the district's service chatbot (NLU, FAQ, flows, tickets, channels).",
        epilog="example:\n  tongxin shell\n  echo 我想申请红色信贷 | tongxin nlu parse",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:
                continue  # command group not built yet
            raise
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 2
    try:
        return int(handler(args) or 0)
    except CliError as exc:
        print(f"tongxin: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
