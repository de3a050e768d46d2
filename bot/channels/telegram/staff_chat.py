"""The staff group: every new ticket (of any channel) is posted with 接单 / 办结
buttons, and a press by a configured staff member moves the ticket through
`flows.staff`, exactly as `tongxin tickets assign/resolve` would.

Everything here is synchronous and talks to the store; the channel runs it in
a worker thread and does the Telegram calls itself.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from telegram import InlineKeyboardButton, InlineKeyboardMarkup

from bot.channels.telegram.callbacks import CallbackSigner, StaffPress
from bot.channels.telegram.render import trim_text
from bot.staff_notify.feed import read_cursor as feed_cursor
from flows.replies import Replies
from flows.staff import (
    StaffInputError,
    assign_ticket,
    kind_label,
    local_time,
    resolve_ticket,
    status_label,
)
from flows.store import Store, StoreError, Ticket, TicketNotFoundError
from nlu.entities import mask_personal_data

log = logging.getLogger("tongxin.telegram")

CURSOR_KEY = "telegram:staff_cursor"
STAFF_LEASE_KEY = "telegram:staff_lease"
MAX_FIELD_CHARS = 300
DONE_STATUSES = frozenset({"resolved", "closed", "cancelled"})


def _field_label(replies: Replies, name: str) -> str:
    key = f"telegram.field.{name}"
    return replies.text(key) if key in replies else name


def _field_value(name: str, value: object) -> str:
    if name == "attachments" and isinstance(value, list):
        text = f"{len(value)}张图片"  # platform media ids mean nothing to a reader
    elif isinstance(value, list):
        text = "、".join(str(v) for v in value)
    elif isinstance(value, dict):
        text = "；".join(f"{k}={v}" for k, v in value.items())
    else:
        text = str(value)
    # Staff see the full details with `tongxin tickets show`; a chat group
    # only gets masked phone and ID numbers.
    text = mask_personal_data(" ".join(text.split()), mask_phones=True)
    return text if len(text) <= MAX_FIELD_CHARS else text[: MAX_FIELD_CHARS - 1] + "…"


def staff_post_text(replies: Replies, ticket: Ticket) -> str:
    lines = [
        f"  {_field_label(replies, name)}：{_field_value(name, value)}"
        for name, value in ticket.fields.items()
        if name != "phone" and value not in (None, "", [], {})
    ]
    text = replies.text(
        "telegram.staff.new_ticket",
        ticket_id=ticket.id,
        kind_label=kind_label(replies, ticket.kind),
        department=ticket.department,
        channel=ticket.channel,
        phone=mask_personal_data(ticket.phone, mask_phones=True) if ticket.phone else "-",
        created=local_time(ticket.created_at),
        fields="\n".join(lines) or "  -",
    )
    return trim_text(text)


def staff_keyboard(
    signer: CallbackSigner, replies: Replies, ticket: Ticket
) -> InlineKeyboardMarkup:
    """Buttons that fit the ticket's status: what can still be done, and who has it."""
    rows: list[list[InlineKeyboardButton]] = []

    def button(label: str, action: str) -> None:
        data = signer.staff(action, ticket.id)
        if data is not None:
            rows.append([InlineKeyboardButton(label, callback_data=data)])

    if ticket.status in DONE_STATUSES:
        label = replies.text(
            "telegram.staff.status_label",
            status_label=status_label(replies, ticket.status),
            assignee=ticket.assignee or "-",
        )
        button(label, "i")
    elif ticket.assignee:
        button(replies.text("telegram.staff.taken_label", assignee=ticket.assignee), "i")
        button(replies.text("telegram.staff.done_button"), "d")
    else:
        button(replies.text("telegram.staff.take_button"), "t")
        button(replies.text("telegram.staff.done_button"), "d")
    return InlineKeyboardMarkup(rows)


@dataclass(frozen=True)
class StaffOutcome:
    text: str  # answerCallbackQuery text
    alert: bool  # shown as a dialog (refusals) rather than a toast
    ticket: Ticket | None  # the ticket after the press, for the new keyboard


def apply_staff_press(
    store: Store, replies: Replies, press: StaffPress, *, staff_name: str, staff_id: int
) -> StaffOutcome:
    """Take or resolve the ticket; refusals come back as alerts, nothing raises.
    One transaction, so that two presses (in two server processes) can't both act."""
    with store.transaction():
        return _apply(store, replies, press, staff_name=staff_name, staff_id=staff_id)


def _apply(
    store: Store, replies: Replies, press: StaffPress, *, staff_name: str, staff_id: int
) -> StaffOutcome:
    actor = f"telegram:{staff_id}"
    try:
        ticket = store.get_ticket(press.ticket_id)
    except TicketNotFoundError:
        return StaffOutcome(replies.text("telegram.alert.no_ticket"), True, None)
    current = status_label(replies, ticket.status)
    if press.action == "i":
        return StaffOutcome(
            replies.text(
                "telegram.staff.status_toast",
                ticket_id=ticket.id,
                status_label=current,
                assignee=ticket.assignee or "-",
            ),
            False,
            ticket,
        )
    if ticket.status in DONE_STATUSES:
        return StaffOutcome(
            replies.text("telegram.alert.already_done", ticket_id=ticket.id, status_label=current),
            True,
            ticket,
        )
    try:
        if press.action == "t":
            if ticket.assignee:
                return StaffOutcome(
                    replies.text(
                        "telegram.alert.already_taken",
                        ticket_id=ticket.id,
                        assignee=ticket.assignee,
                    ),
                    True,
                    ticket,
                )
            moved = assign_ticket(store, replies, ticket.id, to=staff_name, actor=actor)
            reply_id = "telegram.staff.taken_toast"
        else:
            note = replies.text("telegram.staff.resolve_note")
            moved = resolve_ticket(store, replies, ticket.id, note=note, actor=actor)
            reply_id = "telegram.staff.done_toast"
    except (StaffInputError, StoreError) as exc:
        log.warning("staff press refused: ticket=%s action=%s: %s", ticket.id, press.action, exc)
        return StaffOutcome(replies.text("telegram.alert.failed", reason=str(exc)), True, ticket)
    return StaffOutcome(replies.text(reply_id, ticket_id=moved.id), False, moved)


def read_cursor(store: Store) -> int:
    """The last ticket event already posted to the staff chat (see
    `bot.staff_notify.feed.read_cursor`)."""
    return feed_cursor(store, CURSOR_KEY)
