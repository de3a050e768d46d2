"""Staff actions on tickets: validation, the user's notification, formatting."""

from __future__ import annotations

import sqlite3
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

import flows.store as store_module
from flows import staff
from flows.paths import default_data_dir
from flows.replies import Replies
from flows.staff import StaffInputError
from flows.store import (
    LOCAL_TZ,
    TICKET_STATUSES,
    IllegalTransitionError,
    Store,
    TicketNotFoundError,
)

KINDS = (
    "legal_aid",
    "microloan",
    "dispute_mediation",
    "report_issue",
    "human_handoff",
    "volunteer_signup",
)


@pytest.fixture(scope="module")
def replies() -> Replies:
    return Replies.load(default_data_dir() / "replies")


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "t.db"


@pytest.fixture
def store(db: Path) -> Any:
    s = Store(db)
    yield s
    s.close()


def open_ticket(store: Store, kind: str = "dispute_mediation", user_id: str = "u1") -> Any:
    ticket, _ = store.create_ticket(
        kind=kind,
        department="和和家调解室",
        channel="shell",
        user_id=user_id,
        phone="13912345678",
        fields={"other_party": "楼上邻居", "what": "半夜噪音"},
    )
    return ticket


def snapshot(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    with sqlite3.connect(path) as conn:
        names = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        return {n: conn.execute(f"SELECT * FROM {n} ORDER BY 1").fetchall() for n in names}


def test_staff_texts_exist_for_every_status_and_kind(replies: Replies) -> None:
    for status in ("assigned", "in_progress", "resolved", "closed", "cancelled", "note"):
        text = replies.text(
            f"ticket.notify.{status}",
            ticket_id="TX260301-0001",
            kind_label="法律咨询",
            assignee="王律师",
            note="已联系",
        )
        assert "TX260301-0001" in text
        assert "{" not in text
    for kind in KINDS:
        label = staff.kind_label(replies, kind)
        assert label != kind and label.strip()


def test_assign_notifies_the_user_with_kind_and_assignee(store: Store, replies: Replies) -> None:
    ticket = open_ticket(store)
    moved = staff.assign_ticket(store, replies, ticket.id.lower(), " 李调解员 ", "王主任")
    assert (moved.status, moved.assignee) == ("assigned", "李调解员")
    [message] = store.list_outbox(ticket_id=ticket.id)
    assert (message.channel, message.user_id, message.status) == ("shell", "u1", "pending")
    assert ticket.id in message.text
    assert "矛盾调解" in message.text
    assert "李调解员" in message.text
    event = store.ticket_events(ticket.id)[-1]
    assert (event.actor, event.action, event.to_status) == ("王主任", "assigned", "assigned")


def test_reassigning_in_progress_keeps_status(store: Store, replies: Replies) -> None:
    ticket = open_ticket(store)
    staff.assign_ticket(store, replies, ticket.id, "李", "a")
    staff.update_ticket(store, replies, ticket.id, "in_progress", "已约谈", "a")
    moved = staff.assign_ticket(store, replies, ticket.id, "赵", "a")
    assert (moved.status, moved.assignee) == ("in_progress", "赵")
    assert "赵" in store.list_outbox(ticket_id=ticket.id)[-1].text


@pytest.mark.parametrize(
    ("to", "error"),
    [("", StaffInputError), ("   ", StaffInputError), ("x" * 65, StaffInputError)],
)
def test_assign_bad_assignee_changes_nothing(
    store: Store, replies: Replies, db: Path, to: str, error: type[Exception]
) -> None:
    ticket = open_ticket(store)
    before = snapshot(db)
    with pytest.raises(error):
        staff.assign_ticket(store, replies, ticket.id, to, "a")
    assert snapshot(db) == before


def test_assign_refusals_change_nothing(store: Store, replies: Replies, db: Path) -> None:
    ticket = open_ticket(store)
    staff.assign_ticket(store, replies, ticket.id, "李", "a")
    done = open_ticket(store)
    staff.resolve_ticket(store, replies, done.id, "已调解", "a")
    before = snapshot(db)
    with pytest.raises(StaffInputError, match="already assigned"):
        staff.assign_ticket(store, replies, ticket.id, "李", "a")
    with pytest.raises(IllegalTransitionError, match="resolved"):
        staff.assign_ticket(store, replies, done.id, "赵", "a")
    with pytest.raises(TicketNotFoundError):
        staff.assign_ticket(store, replies, "TX000101-0001", "赵", "a")
    assert snapshot(db) == before


def test_update_moves_and_sends_the_note(store: Store, replies: Replies) -> None:
    ticket = open_ticket(store)
    moved = staff.update_ticket(store, replies, ticket.id, "in_progress", "已联系双方", "a")
    assert moved.status == "in_progress"
    message = store.list_outbox(ticket_id=ticket.id)[-1]
    assert "已联系双方" in message.text
    assert message.text == replies.text(
        "ticket.notify.in_progress", ticket_id=ticket.id, kind_label="矛盾调解", note="已联系双方"
    )
    event = store.ticket_events(ticket.id)[-1]
    assert (event.from_status, event.to_status, event.note) == ("open", "in_progress", "已联系双方")


def test_update_without_status_or_with_the_same_is_a_progress_note(
    store: Store, replies: Replies
) -> None:
    ticket = open_ticket(store)
    staff.update_ticket(store, replies, ticket.id, None, "周三下午面谈", "a")
    staff.update_ticket(store, replies, ticket.id, "open", "材料已收到", "a")
    assert store.get_ticket(ticket.id).status == "open"
    events = store.ticket_events(ticket.id)[-2:]
    assert [(e.action, e.note) for e in events] == [
        ("note", "周三下午面谈"),
        ("note", "材料已收到"),
    ]
    texts = [m.text for m in store.list_outbox(ticket_id=ticket.id)]
    assert texts == [
        replies.text("ticket.notify.note", ticket_id=ticket.id, kind_label="矛盾调解", note=n)
        for n in ("周三下午面谈", "材料已收到")
    ]


def test_note_drops_control_characters(store: Store, replies: Replies) -> None:
    ticket = open_ticket(store)
    staff.update_ticket(store, replies, ticket.id, None, "\x1b[31m第一行\n第二行\x00 ", "a")
    assert store.ticket_events(ticket.id)[-1].note == "[31m第一行\n第二行"


@pytest.mark.parametrize(
    ("status", "note", "error", "message"),
    [
        ("done", "x", StaffInputError, "unknown status"),
        ("assigned", "x", StaffInputError, "tickets assign"),
        ("in_progress", "", StaffInputError, "note"),
        ("in_progress", " \n\t", StaffInputError, "note"),
        ("in_progress", "长" * 1001, StaffInputError, "too long"),
        ("closed", "x", IllegalTransitionError, r"cannot become closed \(allowed: "),
    ],
)
def test_update_refusals_change_nothing(
    store: Store,
    replies: Replies,
    db: Path,
    status: str,
    note: str,
    error: type[Exception],
    message: str,
) -> None:
    ticket = open_ticket(store)
    before = snapshot(db)
    with pytest.raises(error, match=message):
        staff.update_ticket(store, replies, ticket.id, status, note, "a")
    assert snapshot(db) == before


@pytest.mark.parametrize("final", ["closed", "cancelled"])
def test_final_tickets_take_no_more_changes(
    store: Store, replies: Replies, db: Path, final: str
) -> None:
    ticket = open_ticket(store)
    if final == "closed":
        staff.resolve_ticket(store, replies, ticket.id, "已解决", "a")
    staff.update_ticket(store, replies, ticket.id, final, "结束", "a")
    assert store.get_ticket(ticket.id).status == final
    before = snapshot(db)
    with pytest.raises(IllegalTransitionError, match=final):
        staff.update_ticket(store, replies, ticket.id, None, "再补充一句", "a")
    with pytest.raises(IllegalTransitionError):
        staff.assign_ticket(store, replies, ticket.id, "赵", "a")
    with pytest.raises(IllegalTransitionError):
        staff.resolve_ticket(store, replies, ticket.id, "x", "a")
    assert snapshot(db) == before


def test_resolve_then_close_or_reopen(store: Store, replies: Replies) -> None:
    ticket = open_ticket(store, kind="microloan")
    resolved = staff.resolve_ticket(store, replies, ticket.id, "贷款已发放", "a")
    assert resolved.status == "resolved"
    assert resolved.resolved_at is not None
    outcome, survey = (item.text for item in store.list_outbox(ticket_id=ticket.id)[-2:])
    assert "贷款已发放" in outcome and "红色信贷预申请" in outcome
    assert "满意吗" in survey
    reopened = staff.update_ticket(store, replies, ticket.id, "in_progress", "还需补材料", "a")
    assert (reopened.status, reopened.resolved_at) == ("in_progress", None)
    staff.resolve_ticket(store, replies, ticket.id, "材料齐全，已发放", "a")
    closed = staff.update_ticket(store, replies, ticket.id, "closed", "回访满意", "a")
    assert closed.status == "closed"
    # Each resolution is followed by the satisfaction question.
    assert len(store.list_outbox(ticket_id=ticket.id)) == 6


def test_anonymised_ticket_moves_without_a_message(store: Store, replies: Replies) -> None:
    ticket = open_ticket(store)
    store.forget_user("u1")
    staff.assign_ticket(store, replies, ticket.id, "李", "a")
    staff.resolve_ticket(store, replies, ticket.id, "已处理", "a")
    assert store.get_ticket(ticket.id).status == "resolved"
    assert store.list_outbox() == []


def test_format_ticket_shows_details_fields_and_trail(store: Store, replies: Replies) -> None:
    ticket = open_ticket(store)
    staff.assign_ticket(store, replies, ticket.id, "李调解员", "王主任")
    staff.update_ticket(store, replies, ticket.id, "in_progress", "已约双方周三面谈", "王主任")
    ticket = store.get_ticket(ticket.id)
    text = staff.format_ticket(ticket, store.ticket_events(ticket.id), replies)
    for expected in (
        ticket.id,
        "dispute_mediation (矛盾调解)",
        "in_progress",
        "和和家调解室",
        "李调解员",
        "13912345678",
        "楼上邻居",
        "半夜噪音",
        "open -> assigned",
        "assigned -> in_progress",
        "已约双方周三面谈",
        "王主任",
    ):
        assert expected in text, expected
    # Times are shown in local (China) time.
    local = datetime.fromisoformat(ticket.created_at).astimezone(LOCAL_TZ)
    assert local.strftime("%Y-%m-%d %H:%M:%S") in text
    lines = text.splitlines()
    assert lines.index("events:") < next(i for i, ln in enumerate(lines) if "已约双方" in ln)


def test_format_stats(store: Store, replies: Replies, monkeypatch: pytest.MonkeyPatch) -> None:
    start = datetime(2026, 3, 1, 9, 0, tzinfo=LOCAL_TZ)
    clock = [start]
    monkeypatch.setattr(store_module, "utcnow", lambda: clock[0])
    first, second = open_ticket(store, "legal_aid"), open_ticket(store, "legal_aid")
    open_ticket(store, "report_issue")
    clock[0] = start + timedelta(hours=3)
    staff.resolve_ticket(store, replies, first.id, "已答复", "a")
    clock[0] = start + timedelta(hours=5)
    staff.resolve_ticket(store, replies, second.id, "已答复", "a")
    text = staff.format_stats(store.stats())
    assert "办结率: 66.7%" in text
    assert "median time to resolve: 4.0 h" in text
    rows = {line.split()[0]: line.split()[1:] for line in text.splitlines() if line.strip()}
    header = rows["kind"]
    assert dict(zip(header, rows["legal_aid"], strict=True))["resolved"] == "2"
    assert dict(zip(header, rows["report_issue"], strict=True))["open"] == "1"
    assert dict(zip(header, rows["total"], strict=True))["total"] == "3"
    assert set(TICKET_STATUSES) <= set(header)


def test_format_stats_when_empty(store: Store) -> None:
    text = staff.format_stats(store.stats())
    assert "办结率: -" in text
    assert "median time to resolve: -" in text


@pytest.mark.parametrize(
    ("hours", "shown"), [(None, "-"), (0.5, "30 min"), (4.3, "4.3 h"), (72, "3.0 d")]
)
def test_format_duration(hours: float | None, shown: str) -> None:
    assert staff.format_duration(hours) == shown
