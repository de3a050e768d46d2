"""`tongxin tickets ...`: staff list, read and move tickets."""

from __future__ import annotations

import argparse
from datetime import date
from typing import Any

from bot.cli.common import CliError, add_command, add_group
from bot.cli.store_access import (
    actor_of,
    add_actor_option,
    load_deadlines,
    load_replies,
    open_store,
    print_json,
    try_load_replies,
)


def register(sub: Any) -> None:
    tsub = add_group(
        sub,
        "tickets",
        "list, show and move tickets (staff)",
        "Staff commands for tickets. Every change writes an audit event and "
        "queues a message to the user.",
        "tongxin tickets list --status open",
    )

    p = add_command(
        tsub, "list", "list tickets, oldest first", "tongxin tickets list --status open --json"
    )
    p.add_argument("--status", help="only tickets with this status (open, assigned, ...)")
    p.add_argument("--kind", help="only tickets of this kind (legal_aid, microloan, ...)")
    p.add_argument("--user", help="only tickets of this user id")
    p.add_argument("--json", action="store_true", help="print a JSON array")
    p.set_defaults(handler=cmd_list)

    p = add_command(
        tsub, "show", "a ticket's details and event trail", "tongxin tickets show TX261127-0001"
    )
    p.add_argument("ticket_id", metavar="ID")
    p.add_argument("--json", action="store_true", help="print the ticket and its events as JSON")
    p.set_defaults(handler=cmd_show)

    p = add_command(
        tsub,
        "assign",
        "assign a ticket to a person or desk; the user is told who took it",
        "tongxin tickets assign TX261127-0001 --to 王律师",
    )
    p.add_argument("ticket_id", metavar="ID")
    p.add_argument("--to", required=True, metavar="WHO", help="the person or desk taking it")
    add_actor_option(p)
    p.set_defaults(handler=cmd_assign)

    p = add_command(
        tsub,
        "update",
        "change a ticket's status and/or add a progress note; the note is sent to the user",
        "tongxin tickets update TX261127-0001 --status in_progress --note 已联系当事人，约周三面谈",
    )
    p.add_argument("ticket_id", metavar="ID")
    p.add_argument(
        "--status",
        help="new status: in_progress, resolved, closed or cancelled (omit to add a note only)",
    )
    p.add_argument("--note", required=True, help="what happened; the user receives it")
    add_actor_option(p)
    p.set_defaults(handler=cmd_update)

    p = add_command(
        tsub,
        "resolve",
        "mark a ticket resolved; the note (the outcome) is sent to the user",
        "tongxin tickets resolve TX261127-0001 --note 调解成功，双方签订协议",
    )
    p.add_argument("ticket_id", metavar="ID")
    p.add_argument("--note", required=True, help="the outcome; the user receives it")
    add_actor_option(p)
    p.set_defaults(handler=cmd_resolve)

    p = add_command(
        tsub,
        "stats",
        "办结率, 满意率, overdue, medians and counts (the dashboard's figures)",
        "tongxin tickets stats --since 2026-11-01 --until 2026-11-30 --json",
    )
    p.add_argument("--since", metavar="YYYY-MM-DD", help="tickets created from this local day")
    p.add_argument("--until", metavar="YYYY-MM-DD", help="tickets created up to this local day")
    p.add_argument("--department", help="one desk, as named in data/routing.yml")
    p.add_argument("--json", action="store_true", help="print a JSON object")
    p.set_defaults(handler=cmd_stats)

    p = add_command(
        tsub,
        "sweep",
        "record the one `overdue` event of tickets past their due time (serve: each minute)",
        "tongxin tickets sweep",
    )
    p.add_argument("--json", action="store_true", help="print the ids marked overdue")
    p.set_defaults(handler=cmd_sweep)


def _check_status(status: str | None) -> None:
    from flows.store import TICKET_STATUSES

    if status is not None and status not in TICKET_STATUSES:
        raise CliError(f"unknown status {status!r}; one of: {', '.join(TICKET_STATUSES)}")


def cmd_list(args: argparse.Namespace) -> int:
    from flows.staff import format_table, local_time

    _check_status(args.status)
    with open_store(args, read_only=True) as store:
        if args.kind is not None:
            # A typo must not look like "no tickets": accept kinds the replies
            # name and kinds already stored.
            replies = try_load_replies()
            labelled = replies.texts if replies else {}
            known = {k.removeprefix("kind.") for k in labelled if k.startswith("kind.")}
            known |= set(store.stats().by_kind_status)
            if args.kind not in known:
                raise CliError(f"unknown kind {args.kind!r}; one of: {', '.join(sorted(known))}")
        tickets = store.list_tickets(status=args.status, kind=args.kind, user_id=args.user)
    if args.json:
        print_json([t.to_dict() for t in tickets])
        return 0
    if not tickets:
        print("no tickets")
        return 0
    rows = [
        [
            t.id,
            t.kind,
            t.status,
            t.assignee or "-",
            t.channel,
            t.user_id,
            t.phone or "-",
            local_time(t.created_at),
        ]
        for t in tickets
    ]
    headers = ["id", "kind", "status", "assignee", "channel", "user", "phone", "created"]
    print(format_table(headers, rows), end="")
    print(f"{len(tickets)} ticket{'s' if len(tickets) != 1 else ''}")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from flows.staff import format_ticket

    with open_store(args, read_only=True) as store:
        ticket = store.get_ticket(args.ticket_id)
        events = store.ticket_events(ticket.id)
    if args.json:
        print_json({**ticket.to_dict(), "events": [asdict(e) for e in events]})
    else:
        print(format_ticket(ticket, events, try_load_replies()))
    return 0


def _report_change(before_status: str, ticket: Any, queued: list[Any]) -> None:
    move = (
        f"{before_status} -> {ticket.status}" if before_status != ticket.status else ticket.status
    )
    assignee = f" (assignee: {ticket.assignee})" if ticket.assignee else ""
    print(f"{ticket.id}: {move}{assignee}")
    if queued:
        for item in queued:
            print(f"queued for the user (outbox #{item.id}, {item.channel}):")
            print("  " + item.text.replace("\n", "\n  "))
    else:
        print("the user is not notified (anonymised ticket)")


def _change(args: argparse.Namespace, action: str) -> int:
    from flows import staff

    replies = load_replies()
    actor = actor_of(args)
    with open_store(args) as store:
        before = store.get_ticket(args.ticket_id)
        seen = {item.id for item in store.list_outbox(ticket_id=before.id)}
        if action == "assign":
            ticket = staff.assign_ticket(store, replies, before.id, args.to, actor)
        elif action == "update":
            ticket = staff.update_ticket(store, replies, before.id, args.status, args.note, actor)
        else:
            ticket = staff.resolve_ticket(store, replies, before.id, args.note, actor)
        queued = [item for item in store.list_outbox(ticket_id=ticket.id) if item.id not in seen]
    _report_change(before.status, ticket, queued)
    return 0


def cmd_assign(args: argparse.Namespace) -> int:
    return _change(args, "assign")


def cmd_update(args: argparse.Namespace) -> int:
    return _change(args, "update")


def cmd_resolve(args: argparse.Namespace) -> int:
    return _change(args, "resolve")


def _day(value: str | None, what: str) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(value.strip())
    except ValueError as exc:
        raise CliError(f"{what} must be a date like 2026-11-30, got {value!r}") from exc


def cmd_stats(args: argparse.Namespace) -> int:
    from flows.stats import StatsFilter, compute_stats, format_stats

    f = StatsFilter(
        since=_day(args.since, "--since"),
        until=_day(args.until, "--until"),
        department=(args.department or "").strip() or None,
    )
    if f.since and f.until and f.since > f.until:
        raise CliError("--since is after --until")
    with open_store(args, read_only=True) as store:
        figures = compute_stats(store, f)
    if args.json:
        print_json(figures)
    else:
        print(format_stats(figures), end="")
    return 0


def cmd_sweep(args: argparse.Namespace) -> int:
    from flows.deadlines import sweep_overdue

    deadlines = load_deadlines(args)
    with open_store(args) as store:
        marked = sweep_overdue(store, deadlines)
    if args.json:
        print_json(marked)
    else:
        print(
            f"{len(marked)} ticket(s) newly overdue" + (": " + ", ".join(marked) if marked else "")
        )
    return 0
