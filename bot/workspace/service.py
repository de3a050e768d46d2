"""What staff do in the workspace, whichever page or JSON call asks: read the
queue and a ticket, reply or note, move and assign, take a conversation over
and hand it back. Every action is checked against the staff member's role and
department and written to the ticket's audit trail under their name."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from bot.app import Core
from bot.photos import Photo, PhotoStore
from bot.workspace.accounts import StaffUser, load_routing
from flows import takeover
from flows.staff import (
    MAX_NOTE_CHARS,
    StaffInputError,
    _clean,
    assign_ticket,
    kind_label,
    local_time,
    status_label,
    update_ticket,
)
from flows.stats import StatsFilter
from flows.store import (
    FORGOTTEN_USER_ID,
    TICKET_STATUSES,
    IllegalTransitionError,
    Ticket,
    TicketNotFoundError,
    iso,
    utcnow,
)
from flows.workspace_store import QueuePage, TicketFilter, WorkspaceStore
from nlu.entities import mask_personal_data

PAGE_SIZE = 50
MAX_PAGE_SIZE = 500


class ForbiddenError(Exception):
    """The staff member's role does not allow this."""


class ConflictError(Exception):
    """The change cannot be made in the ticket's present state (HTTP 409)."""


_DIGIT = re.compile(r"\d")


def mask_phone_text(value: str | None) -> str | None:
    if value is None:
        return None
    # A phone has 11 digits and an ID number 17 or more: shorter texts hold
    # neither, and a queue page masks hundreds of them.
    if len(_DIGIT.findall(value)) < 11:
        return value
    return mask_personal_data(value, mask_phones=True)


def _masked(value: Any) -> Any:
    if isinstance(value, str):
        return mask_phone_text(value)
    if isinstance(value, dict):
        return {k: _masked(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_masked(v) for v in value]
    return value


def masked_fields(fields: Mapping[str, Any]) -> dict[str, Any]:
    """A ticket's fields with every phone number masked, however deep."""
    return {key: _masked(value) for key, value in fields.items()}


def _parse_date(raw: str | None) -> date | None:
    if not raw:
        return None
    try:
        return date.fromisoformat(raw.strip())
    except ValueError as exc:
        raise StaffInputError(f"a date is written 2026-12-01, got {raw!r}") from exc


def filter_from_query(query: Mapping[str, str]) -> TicketFilter:
    status = query.get("status") or None
    if status is not None and status not in TICKET_STATUSES:
        raise StaffInputError(f"unknown status {status!r}; one of: {', '.join(TICKET_STATUSES)}")
    return TicketFilter(
        status=status,
        kind=query.get("kind") or None,
        department=query.get("department") or None,
        assignee=query.get("assignee") or None,
        q=(query.get("q") or "").strip()[:100] or None,
        since=_parse_date(query.get("since")),
        until=_parse_date(query.get("until")),
        overdue=query.get("overdue") in ("1", "true", "yes"),
    )


@dataclass(frozen=True)
class Workspace:
    core: Core
    ws: WorkspaceStore
    routing: dict[str, str]  # kind -> department

    @classmethod
    def build(cls, core: Core) -> Workspace:
        return cls(core, WorkspaceStore(core.store), load_routing(core.settings.data_dir))

    # -- labels and times ------------------------------------------------

    def kind_label(self, kind: str) -> str:
        return kind_label(self.core.replies, kind)

    def status_label(self, status: str) -> str:
        return self.label("workspace.status", status)

    def label(self, prefix: str, value: str) -> str:
        key = f"{prefix}.{value}"
        return self.core.replies.text(key) if key in self.core.replies else value

    def text(self, reply_id: str, **values: Any) -> str:
        return self.core.replies.text(reply_id, **values)

    @property
    def departments(self) -> list[str]:
        return sorted(set(self.routing.values()))

    def overdue_before(self) -> datetime:
        """Tickets due before now are overdue (their `due_at`, flows/deadlines.py)."""
        return utcnow()

    # -- reading -----------------------------------------------------------

    def queue(
        self,
        user: StaffUser,
        f: TicketFilter,
        *,
        order: str = "overdue",
        limit: int | None = PAGE_SIZE,
        offset: int = 0,
        with_counts: bool = True,
    ) -> QueuePage:
        return self.ws.queue(
            f,
            departments=user.departments,
            overdue_before=self.overdue_before(),
            order=order,
            limit=limit,
            offset=offset,
            with_counts=with_counts,
        )

    def list_item(self, ticket: Ticket, overdue: bool) -> dict[str, Any]:
        """A ticket as in `tickets list --json`, phones masked (a list is seen
        over a shoulder; the ticket page shows them)."""
        item = ticket.to_dict()
        item["phone"] = mask_phone_text(ticket.phone)
        item["fields"] = masked_fields(ticket.fields)
        item["overdue"] = overdue
        item["kind_label"] = self.kind_label(ticket.kind)
        item["status_label"] = self.status_label(ticket.status)
        return item

    def ticket(self, user: StaffUser, ticket_id: str) -> Ticket:
        """The ticket if the staff member may see it; another department's
        ticket is "not found" so that ids of other desks are not confirmed."""
        ticket = self.core.store.get_ticket(ticket_id)
        if not user.sees(ticket.department):
            raise TicketNotFoundError(f"no ticket {ticket_id}")
        return ticket

    def detail(self, user: StaffUser, ticket_id: str) -> dict[str, Any]:
        ticket = self.ticket(user, ticket_id)
        item = ticket.to_dict()
        item["overdue"] = self.ws.is_overdue(ticket, self.overdue_before())
        item["kind_label"] = self.kind_label(ticket.kind)
        item["status_label"] = self.status_label(ticket.status)
        item["events"] = [
            {
                "id": e.id,
                "at": e.at,
                "actor": e.actor,
                "action": e.action,
                "from_status": e.from_status,
                "to_status": e.to_status,
                "note": e.note,
            }
            for e in self.core.store.ticket_events(ticket.id)
        ]
        item["transcript"] = self.transcript(ticket)
        refs = list(ticket.fields.get("attachments") or [])
        item["attachments"] = refs
        photos = self.photos()
        # Kept photos are served by /staff/tickets/{id}/photos/{n}; a missing one
        # could not be downloaded (or its retention period ended).
        item["photos"] = [
            {"n": n, "url": f"/staff/tickets/{ticket.id}/photos/{n}"}
            if photos.has(ticket.channel, ref)
            else {"n": n, "url": None}
            for n, ref in enumerate(refs)
        ]
        # What was sent to the resident about this ticket, and what failed and why
        # (outside WeChat's 48 hours with no template, a quota, an unknown template).
        item["deliveries"] = [
            {
                "id": o.id,
                "status": o.status,
                "last_error": o.last_error,
                "created_at": o.created_at,
                "sent_at": o.sent_at,
            }
            for o in self.core.store.list_outbox(ticket_id=ticket.id)
        ]
        held = self.holder(ticket)
        item["takeover"] = None if held is None else {"staff": held.staff}
        return item

    def photos(self) -> PhotoStore:
        return PhotoStore(self.core.store, retention_days=self.core.settings.photo_retention_days)

    def photo(self, user: StaffUser, ticket_id: str, n: int) -> Photo:
        """The n-th photo of a ticket the staff member may see."""
        ticket = self.ticket(user, ticket_id)
        refs = list(ticket.fields.get("attachments") or [])
        found = self.photos().get(ticket.channel, refs[n]) if 0 <= n < len(refs) else None
        if found is None:
            raise TicketNotFoundError(f"no photo {n} on ticket {ticket.id}")
        return found

    def transcript(self, ticket: Ticket, *, after: int = 0) -> list[dict[str, Any]]:
        if ticket.user_id == FORGOTTEN_USER_ID:
            return []
        rows = self.ws.messages(ticket.channel, ticket.user_id, after=after)
        return [
            {
                "id": r["id"],
                "at": r["at"],
                "from": "resident"
                if r["direction"] == "in"
                else ("staff" if (r["intent"] or "").startswith("staff") else "bot"),
                "text": r["text"],
                "at_local": local_time(r["at"]),
            }
            for r in rows
        ]

    def holder(self, ticket: Ticket) -> takeover.Takeover | None:
        return takeover.current(self.core.store, ticket.channel, ticket.user_id)

    def stats(self, user: StaffUser, f: StatsFilter | None = None) -> dict[str, Any]:
        """The dashboard's figures within the staff member's departments."""
        return self.ws.stats(
            departments=user.departments, overdue_before=self.overdue_before(), f=f
        )

    def staff_for(self, department: str) -> list[str]:
        """Accounts that may take a ticket of `department`."""
        return [
            a.username
            for a in self.ws.list_accounts()
            if not a.disabled
            and a.role != "viewer"
            and (a.role == "admin" or a.department == department)
        ]

    # -- changing ------------------------------------------------------

    def _changeable(self, user: StaffUser, ticket_id: str) -> Ticket:
        if not user.can_change:
            raise ForbiddenError("a viewer account reads only")
        ticket = self.ticket(user, ticket_id)
        return ticket

    def post_message(
        self, user: StaffUser, ticket_id: str, text: str, *, internal: bool
    ) -> dict[str, Any]:
        """An internal note (staff only) or a reply delivered to the resident
        through the outbox of the channel they used."""
        ticket = self._changeable(user, ticket_id)
        # ID numbers never reach the database, whoever types them.
        body = mask_personal_data(_clean(text, what="text", limit=MAX_NOTE_CHARS))
        store = self.core.store
        if internal:
            with store.transaction():
                self.ws.add_event(ticket.id, user.username, "internal_note", body)
            return {"ticket_id": ticket.id, "internal": True, "text": body}
        if ticket.user_id == FORGOTTEN_USER_ID:
            raise ConflictError("the resident's data was erased; there is no one to reply to")
        with store.transaction():
            held = self.holder(ticket)
            if held is not None and held.staff == user.username:
                # In a live conversation the words go out as they are.
                outgoing = self.text("workspace.live_reply", text=body)
                takeover.touch(store, ticket.channel, ticket.user_id)
            else:
                outgoing = self.text(
                    "ticket.notify.note",
                    ticket_id=ticket.id,
                    kind_label=self.kind_label(ticket.kind),
                    note=body,
                )
            outbox_id = store.enqueue(ticket.channel, ticket.user_id, outgoing, ticket_id=ticket.id)
            store.log_message(
                ticket.channel,
                ticket.user_id,
                "out",
                mask_personal_data(outgoing, mask_phones=True),
                f"staff:{user.username}",
            )
            self.ws.add_event(ticket.id, user.username, "reply", body)
            store.record_first_response(ticket.id, iso(utcnow()))
        return {"ticket_id": ticket.id, "internal": False, "text": outgoing, "outbox_id": outbox_id}

    def change(
        self,
        user: StaffUser,
        ticket_id: str,
        *,
        status: str | None,
        note: str | None,
        assignee: str | None,
    ) -> Ticket:
        """Assign and/or move the ticket in one transaction: a refused part
        leaves the ticket as it was."""
        ticket = self._changeable(user, ticket_id)
        status = (status or "").strip() or None
        assignee = (assignee or "").strip() or None
        note = (note or "").strip() or None
        if status is not None and status not in TICKET_STATUSES:
            raise ConflictError(f"unknown status {status!r}; one of: {', '.join(TICKET_STATUSES)}")
        if status == "assigned" and assignee is None:
            assignee = user.username
        if assignee is not None and assignee not in self.staff_for(ticket.department):
            raise StaffInputError(
                f"{assignee!r} is not an active staff account of {ticket.department}"
            )
        if status is None and assignee is None and note is None:
            raise StaffInputError("nothing to change: give a status, a note or an assignee")
        store, replies = self.core.store, self.core.replies
        try:
            with store.transaction():
                if assignee is not None and assignee != ticket.assignee:
                    assign_ticket(store, replies, ticket.id, assignee, user.username)
                if (status is not None and status != "assigned") or (
                    note is not None and status in (None, "assigned")
                ):
                    moving = None if status == "assigned" else status
                    text = note or status_label(replies, moving or ticket.status)
                    update_ticket(store, replies, ticket.id, moving, text, user.username)
        except IllegalTransitionError as exc:
            raise ConflictError(str(exc)) from exc
        return store.get_ticket(ticket.id)

    def take_over(self, user: StaffUser, ticket_id: str) -> takeover.Takeover:
        ticket = self._changeable(user, ticket_id)
        if ticket.user_id == FORGOTTEN_USER_ID:
            raise ConflictError("the resident's data was erased")
        store = self.core.store
        idle_s = self.core.settings.takeover_idle_minutes * 60
        with store.transaction():
            already = self.holder(ticket)
            try:
                held = takeover.take(
                    store,
                    ticket.channel,
                    ticket.user_id,
                    user.username,
                    idle_s=idle_s,
                    ticket_id=ticket.id,
                )
            except takeover.TakeoverHeldError as exc:
                raise ConflictError(str(exc)) from exc
            if already is None:
                self._tell(ticket, user, "takeover", "workspace.takeover_started", "人工接管对话")
        return held

    def _tell(self, ticket: Ticket, user: StaffUser, action: str, reply_id: str, note: str) -> None:
        """Tell the resident (outbox) and write the audit event."""
        text = self.text(reply_id)
        self.core.store.enqueue(ticket.channel, ticket.user_id, text, ticket_id=ticket.id)
        self.core.store.log_message(
            ticket.channel, ticket.user_id, "out", text, f"staff:{user.username}"
        )
        self.ws.add_event(ticket.id, user.username, action, note)

    def hand_back(self, user: StaffUser, ticket_id: str) -> None:
        ticket = self._changeable(user, ticket_id)
        store = self.core.store
        with store.transaction():
            held = self.holder(ticket)
            if held is None:
                raise ConflictError("the conversation is not taken over")
            if held.staff != user.username and user.role != "admin":
                raise ConflictError(f"the conversation is held by {held.staff}")
            takeover.release(store, ticket.channel, ticket.user_id)
            self._tell(ticket, user, "handback", "workspace.takeover_ended", "对话交还智能助手")

    # -- volunteers -----------------------------------------------------

    def may_see_volunteers(self, user: StaffUser) -> bool:
        return user.sees(self.routing.get("volunteer_signup", ""))

    def volunteers(self, user: StaffUser, query: Mapping[str, str]) -> list[dict[str, Any]]:
        if not self.may_see_volunteers(user):
            raise ForbiddenError("volunteer signups are for the volunteer desk")
        return self.ws.volunteers(
            team=query.get("team") or None,
            since=_parse_date(query.get("since")),
            until=_parse_date(query.get("until")),
        )

    def mark_contacted(self, user: StaffUser, volunteer_id: str) -> bool:
        if not user.can_change:
            raise ForbiddenError("a viewer account reads only")
        if not self.may_see_volunteers(user):
            raise ForbiddenError("volunteer signups are for the volunteer desk")
        return self.ws.mark_contacted(volunteer_id, user.username)
