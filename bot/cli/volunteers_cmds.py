"""`tongxin volunteers list`: the volunteer signups, for the staff."""

from __future__ import annotations

import argparse
from typing import Any

from bot.cli.common import add_command, add_group
from bot.cli.store_access import open_store, print_json


def register(sub: Any) -> None:
    vsub = add_group(
        sub,
        "volunteers",
        "volunteer signups (staff)",
        "Staff commands for volunteer signups.",
        "tongxin volunteers list --json",
    )
    p = add_command(vsub, "list", "list volunteer signups, oldest first", "tongxin volunteers list")
    p.add_argument("--user", help="only signups of this user id")
    p.add_argument("--json", action="store_true", help="print a JSON array")
    p.set_defaults(handler=cmd_list)


def cmd_list(args: argparse.Namespace) -> int:
    from flows.staff import format_table, local_time

    with open_store(args, read_only=True) as store:
        volunteers = store.list_volunteers(user_id=args.user)
    if args.json:
        print_json([v.to_dict() for v in volunteers])
        return 0
    if not volunteers:
        print("no volunteer signups")
        return 0
    headers = ["id", "name", "phone", "team", "skill", "availability", "channel", "user", "created"]
    rows = [
        [
            v.id,
            v.name or "-",
            v.phone or "-",
            v.team or "-",
            v.skill or "-",
            v.availability or "-",
            v.channel,
            v.user_id,
            local_time(v.created_at),
        ]
        for v in volunteers
    ]
    print(format_table(headers, rows), end="")
    print(f"{len(volunteers)} signup{'s' if len(volunteers) != 1 else ''}")
    return 0
