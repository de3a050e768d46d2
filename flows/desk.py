"""The service desk behind the dialogue: files tickets and volunteer signups,
opens handoffs to a person, reports the status of what a user submitted.

Everything here writes to or reads from the store and words its result from
the reply texts; when to call it is the dialogue engine's business.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flows.definitions import FlowBook, FlowSpec
from flows.messages import IncomingMessage, Reply, conversation_key
from flows.replies import Replies
from flows.state import FormState
from flows.store import LOCAL_TZ, Store, Ticket, parse_iso
from nlu.types import ParseResult

HANDOFF_CONTEXT_MESSAGES = 12


class ServiceDesk:
    def __init__(
        self,
        *,
        book: FlowBook,
        replies: Replies,
        store: Store,
        fact: Callable[[str], str | None],
    ) -> None:
        self.book = book
        self.r = replies
        self.store = store
        self.fact = fact

    def submit(self, msg: IncomingMessage, flow: FlowSpec, form: FormState) -> tuple[str, str]:
        """File the finished form once (a repeated confirmation finds the same
        record by the form's id); returns the reply text and the record's id."""
        fields: dict[str, Any] = dict(form.slots)
        if form.attachments:
            fields["attachments"] = list(form.attachments)
        if form.notes:
            # What the user said that fits no field: staff read it with the ticket.
            fields["notes"] = "；".join(form.notes)
        route = self.book.routes[flow.kind]
        phone = _str_or_none(form.slots.get("phone"))
        if flow.creates == "volunteer":
            volunteer, _ = self.store.add_volunteer(
                name=_str_or_none(fields.get("name")),
                phone=phone,
                team=_str_or_none(fields.get("team")),
                skill=_str_or_none(fields.get("team")),
                availability=_str_or_none(fields.get("availability")),
                channel=msg.channel,
                user_id=msg.user_id,
                dedupe_key=f"form:{form.form_id}",
            )
            return self.r.text("submitted.volunteer", volunteer_id=volunteer.id), volunteer.id
        ticket, _ = self.store.create_ticket(
            kind=flow.kind,
            department=route.department,
            channel=msg.channel,
            user_id=msg.user_id,
            phone=phone,
            fields=fields,
            dedupe_key=f"form:{form.form_id}",
        )
        text = self.r.text(
            "submitted.ticket",
            ticket_id=ticket.id,
            department=route.department,
            contact_hint=self.contact_hint(route.contact),
        )
        return text, ticket.id

    def handoff(self, msg: IncomingMessage, form: FormState | None, reason: str) -> Reply:
        """A ticket for a person, carrying what an unfinished form collected
        (never the phone in its fields); an open one is not opened twice."""
        route = self.book.routes["human_handoff"]
        for ticket in self.store.list_tickets(channel=msg.channel, user_id=msg.user_id):
            if ticket.kind == "human_handoff" and ticket.status in ("open", "assigned"):
                # Asked again: staff are reminded (the staff notifiers post `handoff`).
                self.store.add_ticket_event(ticket.id, actor="user", action="handoff")
                return Reply(self.r.text("handoff.exists", ticket_id=ticket.id))
        fields: dict[str, Any] = {"reason": reason[:500]}
        if form is not None:
            fields["unfinished_flow"] = form.flow
            fields["collected"] = {k: v for k, v in form.slots.items() if k not in ("phone",)}
            if form.notes:
                fields["collected"]["notes"] = "；".join(form.notes)
        # The person who picks this up reads what was said, not just "转人工".
        # The log is stored masked (ID numbers, phones).
        recent = self.store.message_log(msg.channel, conversation_key(msg))[
            -HANDOFF_CONTEXT_MESSAGES:
        ]
        if recent:
            fields["conversation"] = [
                {
                    "at": m["at"],
                    "from": "user" if m["direction"] == "in" else "bot",
                    "text": m["text"],
                }
                for m in recent
            ]
        ticket, _ = self.store.create_ticket(
            kind="human_handoff",
            department=route.department,
            channel=msg.channel,
            user_id=msg.user_id,
            phone=_str_or_none(form.slots.get("phone")) if form else None,
            fields=fields,
        )
        return Reply(
            self.r.text(
                "handoff.created",
                ticket_id=ticket.id,
                contact_hint=self.contact_hint(route.contact),
            )
        )

    def status(self, msg: IncomingMessage, parse: ParseResult) -> list[Reply]:
        tickets = self.store.list_tickets(channel=msg.channel, user_id=msg.user_id)
        asked = parse.first("ticket_id")
        if asked is not None:
            wanted = str(asked.value)
            tickets = [t for t in tickets if t.id == wanted]
            if not tickets:
                return [Reply(self.r.text("status.not_found", ticket_id=wanted))]
        if not tickets:
            return [Reply(self.r.text("status.none"))]
        lines = [self.r.text("status.header")]
        lines += [self._status_line(t) for t in tickets[-10:]]
        return [Reply("\n".join(lines))]

    def contact_hint(self, fact_name: str | None) -> str:
        phone = self.fact(fact_name) if fact_name else None
        return self.r.text("contact_hint.known", phone=phone) if phone else ""

    def _status_line(self, ticket: Ticket) -> str:
        kind_id = f"kind.{ticket.kind}"
        kind_label = self.r.text(kind_id) if kind_id in self.r else ticket.kind
        return self.r.text(
            "status.line",
            ticket_id=ticket.id,
            kind_label=kind_label,
            status_label=self.r.text(f"status.label.{ticket.status}"),
            updated=parse_iso(ticket.updated_at).astimezone(LOCAL_TZ).strftime("%Y-%m-%d %H:%M"),
        )


def _str_or_none(value: object) -> str | None:
    return None if value is None else str(value)
