"""The satisfaction survey (回访): when staff resolve a ticket the resident is
asked how satisfied they are; the answer is stored on the ticket, an
unsatisfied one reopens it for its department once, and a second one goes to
an admin instead of looping.

A survey row per ticket moves pending -> asked -> answered (or skipped, when
the resident's next message was no answer, or expired, when they did not
answer in time). A resident filling in a form is not interrupted: the survey
waits as "pending" and is asked at the end of their next idle turn.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from flows.replies import Replies
from flows.state import ConversationState
from flows.store import FORGOTTEN_USER_ID, Store, Ticket, iso, parse_iso

if TYPE_CHECKING:  # the reader pulls in scikit-learn; staff commands need not
    from flows.survey_reader import SurveyAnswer, SurveyReader

SURVEY_ACTOR = "user"
SURVEY_REPLY_IDS: tuple[str, ...] = (
    "survey.question",
    "survey.thanks",
    "survey.reopened",
    "survey.escalated",
    "survey.reopen_note",
    "survey.label.satisfied",
    "survey.label.neutral",
    "survey.label.unsatisfied",
)
# A form untouched this long is abandoned (the dialogue's default idle timeout):
# asking then interrupts nothing.
FORM_ACTIVE = timedelta(minutes=30)


@dataclass(frozen=True)
class SurveySettings:
    answer_within: timedelta = timedelta(hours=72)  # TONGXIN_SURVEY_ANSWER_HOURS


def _in_form(store: Store, channel: str, user_id: str, now: datetime) -> bool:
    state = ConversationState.from_json(store.load_conversation(channel, user_id))
    if state.form is None or state.last_active is None:
        return False
    try:
        return now - parse_iso(state.last_active) < FORM_ACTIVE
    except ValueError:
        return False


def question_text(replies: Replies, ticket: Ticket, kind_label: str) -> str:
    return replies.text("survey.question", ticket_id=ticket.id, kind_label=kind_label)


def queue_survey(
    store: Store, replies: Replies, ticket: Ticket, kind_label: str, now: datetime
) -> str:
    """Call in the transaction that resolved `ticket`. Asks at once through the
    outbox when the resident is idle; else leaves it pending. Returns the
    survey's status."""
    if ticket.user_id == FORGOTTEN_USER_ID:
        return "none"
    stamp = iso(now)
    status = "pending" if _in_form(store, ticket.channel, ticket.user_id, now) else "asked"
    store._exec(
        "INSERT INTO surveys(ticket_id, channel, user_id, status, asked_at, answer, comment,"
        " unsatisfied_count, created_at, updated_at) VALUES (?, ?, ?, ?, ?, NULL, NULL, 0, ?, ?)"
        " ON CONFLICT(ticket_id) DO UPDATE SET status = excluded.status,"
        " asked_at = excluded.asked_at, answer = NULL, updated_at = excluded.updated_at",
        (
            ticket.id,
            ticket.channel,
            ticket.user_id,
            status,
            stamp if status == "asked" else None,
            stamp,
            stamp,
        ),
    )
    if status == "asked":
        store.enqueue(
            ticket.channel,
            ticket.user_id,
            question_text(replies, ticket, kind_label),
            ticket_id=ticket.id,
        )
    return status


class Surveys:
    """The resident's side of the survey, used by the dialogue engine."""

    def __init__(
        self,
        store: Store,
        replies: Replies,
        reader: SurveyReader,
        settings: SurveySettings | None = None,
    ) -> None:
        self.store = store
        self.r = replies
        self.reader = reader
        self.settings = settings or SurveySettings()

    def _open(self, channel: str, user_id: str, status: str) -> dict[str, Any] | None:
        return self.store._one(
            "SELECT * FROM surveys WHERE channel = ? AND user_id = ? AND status = ?"
            " ORDER BY updated_at DESC, ticket_id DESC",
            (channel, user_id, status),
        )

    def answer(self, channel: str, user_id: str, text: str, now: datetime) -> str | None:
        """The reply to a resident's message if it answers their open survey.
        A message that is no answer closes the survey (asked once, never
        nagged) and returns None: the dialogue goes on as usual."""
        survey = self._open(channel, user_id, "asked")
        if survey is None:
            return None
        stamp = iso(now)
        asked = parse_iso(survey["asked_at"]) if survey["asked_at"] else now
        if now - asked > self.settings.answer_within:
            self._close(survey["ticket_id"], "expired", stamp)
            return None
        found = self.reader.read(text)
        if not found.is_answer:
            self._close(survey["ticket_id"], "skipped", stamp)
            return None
        return self._record(survey, found, stamp)

    def _close(self, ticket_id: str, status: str, stamp: str) -> None:
        self.store._exec(
            "UPDATE surveys SET status = ?, updated_at = ? WHERE ticket_id = ?",
            (status, stamp, ticket_id),
        )

    def _record(self, survey: dict[str, Any], found: SurveyAnswer, stamp: str) -> str:
        store = self.store
        ticket = store.get_ticket(survey["ticket_id"])
        unsatisfied = int(survey["unsatisfied_count"]) + (found.label == "unsatisfied")
        store._exec(
            "UPDATE surveys SET status = 'answered', answer = ?, comment = ?,"
            " unsatisfied_count = ?, updated_at = ? WHERE ticket_id = ?",
            (found.label, found.comment, unsatisfied, stamp, ticket.id),
        )
        store._exec(
            "UPDATE tickets SET satisfaction = ?, satisfaction_comment = ? WHERE id = ?",
            (found.label, found.comment, ticket.id),
        )
        note = self.r.text(f"survey.label.{found.label}") + (
            f"：{found.comment}" if found.comment else ""
        )
        store._add_event(ticket.id, SURVEY_ACTOR, "satisfaction", None, None, note, stamp)
        if found.label != "unsatisfied":
            return self.r.text("survey.thanks", ticket_id=ticket.id)
        if unsatisfied == 1 and ticket.status == "resolved":
            store.change_ticket(
                ticket.id,
                actor=SURVEY_ACTOR,
                status="in_progress",
                note=self.r.text("survey.reopen_note", note=note),
            )
            return self.r.text("survey.reopened", ticket_id=ticket.id)
        store._exec("UPDATE tickets SET escalated_at = ? WHERE id = ?", (stamp, ticket.id))
        store._add_event(ticket.id, SURVEY_ACTOR, "escalated", None, None, note, stamp)
        return self.r.text("survey.escalated", ticket_id=ticket.id)

    def ask_pending(
        self, channel: str, user_id: str, now: datetime, kind_label: Any = None
    ) -> str | None:
        """At the end of an idle turn: the question of a survey that waited for
        the resident's form to end, now asked."""
        survey = self._open(channel, user_id, "pending")
        if survey is None:
            return None
        ticket = self.store.get_ticket(survey["ticket_id"])
        self.store._exec(
            "UPDATE surveys SET status = 'asked', asked_at = ?, updated_at = ? WHERE ticket_id = ?",
            (iso(now), iso(now), ticket.id),
        )
        label = kind_label(ticket.kind) if callable(kind_label) else ticket.kind
        return question_text(self.r, ticket, label)
