"""What staff do to tickets: assign, update, resolve, and read them back.

The CLI and the Telegram staff buttons both call these functions, so a ticket
moves the same way whoever moves it: the input is checked, the change, its
audit event and the message to the user are written in one transaction
(`Store.change_ticket`).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence

from flows.replies import Replies
from flows.satisfaction import queue_survey
from flows.store import (
    ALLOWED_TRANSITIONS,
    FORGOTTEN_USER_ID,
    LOCAL_TZ,
    TICKET_STATUSES,
    IllegalTransitionError,
    Stats,
    Store,
    Ticket,
    TicketEvent,
    parse_iso,
    utcnow,
)

# Notes reach the user's phone: long enough for a real answer, short enough
# for one chat bubble.
MAX_NOTE_CHARS = 1000
MAX_NAME_CHARS = 64
FINAL_STATUSES = frozenset({"closed", "cancelled"})


class StaffInputError(ValueError):
    """Staff input that cannot be applied (empty note, unknown status, ...)."""


def _clean(text: str | None, *, what: str, limit: int) -> str:
    """Strip, drop control characters (keeping line breaks), enforce non-empty and a limit."""
    cleaned = "".join(
        ch for ch in (text or "") if ch == "\n" or unicodedata.category(ch)[0] != "C"
    ).strip()
    if not cleaned:
        raise StaffInputError(f"{what} must not be empty")
    if len(cleaned) > limit:
        raise StaffInputError(f"{what} is too long ({len(cleaned)} characters; at most {limit})")
    return cleaned


def kind_label(replies: Replies | None, kind: str) -> str:
    key = f"kind.{kind}"
    return replies.text(key) if replies is not None and key in replies else kind


def status_label(replies: Replies | None, status: str) -> str:
    key = f"status.label.{status}"
    return replies.text(key) if replies is not None and key in replies else status


def _notify_text(
    replies: Replies, ticket: Ticket, reply_id: str, *, assignee: str = "", note: str = ""
) -> str | None:
    # An anonymised ticket has no user left to tell.
    if ticket.user_id == FORGOTTEN_USER_ID:
        return None
    return replies.text(
        reply_id,
        ticket_id=ticket.id,
        kind_label=kind_label(replies, ticket.kind),
        assignee=assignee,
        note=note,
    )


def _refuse_final(ticket: Ticket) -> None:
    if ticket.status in FINAL_STATUSES:
        raise IllegalTransitionError(f"ticket {ticket.id} is {ticket.status}; it cannot change")


def assign_ticket(store: Store, replies: Replies, ticket_id: str, to: str, actor: str) -> Ticket:
    """Give the ticket to `to` and tell the user who took it. An open or assigned
    ticket becomes `assigned`; one in progress keeps its status and changes hands."""
    to = _clean(to, what="assignee", limit=MAX_NAME_CHARS)
    actor = _clean(actor, what="actor", limit=MAX_NAME_CHARS)
    ticket = store.get_ticket(ticket_id)
    _refuse_final(ticket)
    if ticket.status == "resolved":
        raise IllegalTransitionError(
            f"ticket {ticket.id} is resolved; reopen it first "
            f"(tickets update {ticket.id} --status in_progress --note ...)"
        )
    if ticket.assignee == to:
        raise StaffInputError(f"ticket {ticket.id} is already assigned to {to}")
    status = None if ticket.status == "in_progress" else "assigned"
    return store.change_ticket(
        ticket.id,
        actor=actor,
        status=status,
        assignee=to,
        notify_text=_notify_text(replies, ticket, "ticket.notify.assigned", assignee=to),
    )


def update_ticket(
    store: Store, replies: Replies, ticket_id: str, status: str | None, note: str, actor: str
) -> Ticket:
    """Move the ticket to `status` (or, with None or its current status, add a
    progress note) and send the note to the user."""
    note = _clean(note, what="note", limit=MAX_NOTE_CHARS)
    actor = _clean(actor, what="actor", limit=MAX_NAME_CHARS)
    if status is not None:
        status = status.strip()
        if status not in TICKET_STATUSES:
            raise StaffInputError(
                f"unknown status {status!r}; one of: {', '.join(TICKET_STATUSES)}"
            )
        if status == "assigned":
            raise StaffInputError("use `tickets assign ID --to WHO` to assign a ticket")
    ticket = store.get_ticket(ticket_id)
    _refuse_final(ticket)
    if status == ticket.status:
        status = None
    if status is not None and status not in ALLOWED_TRANSITIONS[ticket.status]:
        allowed = sorted(ALLOWED_TRANSITIONS[ticket.status] - {"assigned"})
        raise IllegalTransitionError(
            f"ticket {ticket.id} is {ticket.status}; it cannot become {status} "
            f"(allowed: {', '.join(allowed) or 'none'})"
        )
    reply_id = f"ticket.notify.{status}" if status else "ticket.notify.note"
    with store.transaction():
        changed = store.change_ticket(
            ticket.id,
            actor=actor,
            status=status,
            note=note,
            notify_text=_notify_text(replies, ticket, reply_id, note=note),
        )
        if status == "resolved":
            # Asked right after the outcome; waits if the resident is in a form.
            queue_survey(store, replies, changed, kind_label(replies, changed.kind), utcnow())
    return changed


def resolve_ticket(store: Store, replies: Replies, ticket_id: str, note: str, actor: str) -> Ticket:
    """Mark the ticket resolved and send the user the outcome (`note`)."""
    return update_ticket(store, replies, ticket_id, "resolved", note, actor)


# -- formatting for staff -------------------------------------------------


def local_time(stamp: str | None) -> str:
    """A stored UTC timestamp as local (China) time to the second; '-' when unset."""
    if not stamp:
        return "-"
    return parse_iso(stamp).astimezone(LOCAL_TZ).strftime("%Y-%m-%d %H:%M:%S")


def format_duration(hours: float | None) -> str:
    if hours is None:
        return "-"
    if hours < 1:
        return f"{hours * 60:.0f} min"
    if hours < 48:
        return f"{hours:.1f} h"
    return f"{hours / 24:.1f} d"


def format_ticket(
    ticket: Ticket, events: Sequence[TicketEvent], replies: Replies | None = None
) -> str:
    """`tickets show`: the ticket's details, its form fields and its event trail."""
    kind = ticket.kind
    if replies is not None and f"kind.{kind}" in replies:
        kind = f"{kind} ({kind_label(replies, kind)})"
    lines = [
        f"ticket      {ticket.id}",
        f"kind        {kind}",
        f"status      {ticket.status}",
        f"department  {ticket.department}",
        f"assignee    {ticket.assignee or '-'}",
        f"channel     {ticket.channel}",
        f"user        {ticket.user_id}",
        f"phone       {ticket.phone or '-'}",
        f"created     {local_time(ticket.created_at)}",
        f"updated     {local_time(ticket.updated_at)}",
        f"resolved    {local_time(ticket.resolved_at)}",
        "fields:",
    ]
    if ticket.fields:
        width = max(len(str(k)) for k in ticket.fields)
        for key, value in ticket.fields.items():
            lines.append(f"  {key!s:<{width}}  {value}")
    else:
        lines.append("  -")
    lines.append("events:")
    for event in events:
        move = ""
        if event.to_status and event.from_status and event.from_status != event.to_status:
            move = f"{event.from_status} -> {event.to_status}"
        elif event.to_status and not event.from_status:
            move = f"-> {event.to_status}"
        detail = "  ".join(part for part in (move, event.note or "") if part)
        lines.append(
            f"  {local_time(event.at)}  {event.actor:<10}  {event.action:<10}  {detail}".rstrip()
        )
    return "\n".join(lines)


def format_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A plain text table whose columns line up with CJK text (2 cells wide)."""

    def width(text: str) -> int:
        return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)

    widths = [width(h) for h in headers]
    for row in rows:
        widths = [max(w, width(cell)) for w, cell in zip(widths, row, strict=True)]

    def line(cells: Sequence[str]) -> str:
        padded = (c + " " * (w - width(c)) for c, w in zip(cells, widths, strict=True))
        return "  ".join(padded).rstrip()

    return "\n".join([line(headers), *(line(r) for r in rows)]) + "\n"


def stats_to_dict(stats: Stats) -> dict[str, object]:
    by_status: dict[str, int] = {}
    by_kind: dict[str, int] = {}
    for kind, counts in stats.by_kind_status.items():
        by_kind[kind] = sum(counts.values())
        for status, n in counts.items():
            by_status[status] = by_status.get(status, 0) + n
    return {
        "total": stats.total,
        "completed": stats.completed,
        "completion_rate": stats.completion_rate,
        "median_resolve_hours": stats.median_resolve_hours,
        "by_kind": by_kind,
        "by_status": by_status,
        "by_kind_status": stats.by_kind_status,
    }


def format_stats(stats: Stats) -> str:
    """`tickets stats`: counts by kind and status, 办结率 and median time to resolve."""
    rate = stats.completion_rate
    rate_text = "-" if rate is None else f"{rate:.1%}"
    rows = []
    for kind in sorted(stats.by_kind_status):
        counts = stats.by_kind_status[kind]
        rows.append([kind, *(str(counts.get(s, 0)) for s in TICKET_STATUSES)])
        rows[-1].append(str(sum(counts.values())))
    totals = [
        sum(stats.by_kind_status[k].get(s, 0) for k in stats.by_kind_status)
        for s in TICKET_STATUSES
    ]
    rows.append(["total", *(str(n) for n in totals), str(stats.total)])
    table = format_table(["kind", *TICKET_STATUSES, "total"], rows)
    summary = (
        f"tickets: {stats.total}   completed (resolved + closed): {stats.completed}\n"
        f"completion rate 办结率: {rate_text}\n"
        f"median time to resolve: {format_duration(stats.median_resolve_hours)}\n"
    )
    return table + "\n" + summary
