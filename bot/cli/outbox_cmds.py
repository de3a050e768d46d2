"""`tongxin outbox list`: messages queued for users, so staff see failed deliveries."""

from __future__ import annotations

import argparse
from typing import Any

from bot.cli.common import CliError, add_command, add_group
from bot.cli.store_access import open_store, print_json

OUTBOX_STATUSES = ("pending", "sent", "failed")
PREVIEW_CHARS = 30
ERROR_CHARS = 60


def register(sub: Any) -> None:
    osub = add_group(
        sub,
        "outbox",
        "messages queued for users and their delivery (staff)",
        "Messages to users (ticket notifications) waiting, sent or failed.",
        "tongxin outbox list --status failed",
    )
    p = add_command(
        osub,
        "list",
        "list queued messages with attempts and the last delivery error",
        "tongxin outbox list --status failed",
    )
    p.add_argument("--status", help=f"only messages that are {', '.join(OUTBOX_STATUSES)}")
    p.add_argument("--json", action="store_true", help="print a JSON array")
    p.set_defaults(handler=cmd_list)


def _preview(text: str, limit: int) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def cmd_list(args: argparse.Namespace) -> int:
    from flows.staff import format_table, local_time

    if args.status is not None and args.status not in OUTBOX_STATUSES:
        raise CliError(f"unknown status {args.status!r}; one of: {', '.join(OUTBOX_STATUSES)}")
    with open_store(args, read_only=True) as store:
        items = store.list_outbox(status=args.status)
    if args.json:
        print_json([item.to_dict() for item in items])
        return 0
    if not items:
        print("no messages")
        return 0
    headers = ["id", "status", "channel", "user", "ticket", "tries", "created", "error", "text"]
    rows = [
        [
            str(item.id),
            item.status,
            item.channel,
            item.user_id,
            item.ticket_id or "-",
            str(item.attempts),
            local_time(item.created_at),
            _preview(item.last_error or "-", ERROR_CHARS),
            _preview(item.text, PREVIEW_CHARS),
        ]
        for item in items
    ]
    print(format_table(headers, rows), end="")
    print(f"{len(items)} message{'s' if len(items) != 1 else ''}")
    return 0
