"""`tongxin privacy forget`: erase a user's personal data on request (PIPL)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from bot.cli.common import CliError, add_command, add_group, db_missing, db_path
from bot.cli.store_access import open_store

# How each count of Store.forget_user reads in the report.
_LABELS = {
    "tickets_anonymised": "tickets anonymised (kept for statistics)",
    "conversations": "conversation states deleted",
    "message_log": "logged messages deleted",
    "volunteers": "volunteer signups deleted",
    "outbox": "queued messages deleted",
    "channel_users": "subscription records deleted",
}


def register(sub: Any) -> None:
    psub = add_group(
        sub,
        "privacy",
        "personal data requests (PIPL)",
        "Personal data requests under the PIPL.",
        "tongxin privacy forget --user oAbC123 --yes",
    )
    p = add_command(
        psub,
        "forget",
        "erase a user's personal data; their tickets stay, anonymised, for statistics",
        "tongxin privacy forget --user oAbC123 --channel wechat --yes",
    )
    p.add_argument("--user", required=True, metavar="ID", help="the user's id on their channel")
    p.add_argument("--channel", help="only this channel (wechat, telegram, shell; default: all)")
    p.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    p.set_defaults(handler=cmd_forget)


def _report(counts: dict[str, int]) -> str:
    width = max(len(label) for label in _LABELS.values())
    return "\n".join(f"  {_LABELS.get(key, key):<{width}}  {n}" for key, n in counts.items())


def cmd_forget(args: argparse.Namespace) -> int:
    from flows.store import FORGOTTEN_USER_ID

    user_id = args.user.strip()
    if not user_id:
        raise CliError("--user must not be empty")
    if user_id == FORGOTTEN_USER_ID:
        raise CliError(f"{FORGOTTEN_USER_ID!r} marks tickets already anonymised; give a real id")
    channel = args.channel.strip() if args.channel else None
    scope = f"user {user_id}" + (f" on {channel}" if channel else " (all channels)")
    if db_missing(db_path(args)):
        raise CliError(f"no database at {db_path(args)} (check --db or $TONGXIN_DB)")
    with open_store(args) as store:
        found = store.user_data_counts(user_id, channel=channel)
        if not any(found.values()):
            raise CliError(f"nothing stored for {scope}; nothing removed")
        if not args.yes:
            if not sys.stdin.isatty():
                raise CliError(
                    f"this would erase the personal data of {scope}:\n{_report(found)}\n"
                    "add --yes to confirm"
                )
            print(f"about to erase the personal data of {scope}:\n{_report(found)}")
            if input("erase? [y/N] ").strip().lower() not in ("y", "yes"):
                print("nothing removed")
                return 1
        counts = store.forget_user(user_id, channel=channel)
        # Push the erased pages out of the WAL so the old rows leave the disk now.
        store.checkpoint()
    if channel in (None, "shell"):
        from bot.cli.shell_cmd import history_path

        # The shell's input history (place names, names) of this database goes too.
        history_path(db_path(args)).unlink(missing_ok=True)
    print(f"erased the personal data of {scope}:\n{_report(counts)}")
    return 0
