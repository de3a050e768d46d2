"""Due times counted in working time with a fixed clock (weekends, lunch
breaks, holidays, weekend days worked instead), and the overdue event written
once per ticket even when two processes sweep the same database at once."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import date, datetime, time
from pathlib import Path

import pytest

from flows.deadlines import (
    DeadlineError,
    Deadlines,
    Duration,
    WorkingTime,
    check_deadlines,
    sweep_overdue,
)
from flows.paths import default_data_dir
from flows.store import LOCAL_TZ, Store, iso, parse_iso

CALENDAR = WorkingTime(
    hours=((time(9), time(12)), (time(13, 30), time(17, 30))),
    holidays=frozenset(date(2026, 10, d) for d in range(1, 8)),
    extra_workdays=frozenset({date(2026, 10, 10)}),  # a Saturday worked (调休)
)
RULES = Deadlines(
    CALENDAR,
    {
        "report_issue": {
            "respond": Duration(1, True, "day"),
            "resolve": Duration(3, True, "day"),
        },
        "human_handoff": {"respond": Duration(4, True, "hour")},
        "microloan": {"resolve": Duration(24, False, "hour")},
    },
)


def local(y: int, m: int, d: int, hh: int, mm: int = 0) -> datetime:
    return datetime(y, m, d, hh, mm, tzinfo=LOCAL_TZ)


@pytest.mark.parametrize(
    ("kind", "stage", "start", "due"),
    [
        # Friday morning + 1 working day: Monday, same hour.
        ("report_issue", "respond", local(2026, 11, 27, 10), local(2026, 11, 30, 10)),
        # Saturday: the clock starts on Monday morning and runs the whole day.
        ("report_issue", "respond", local(2026, 11, 28, 15), local(2026, 11, 30, 17, 30)),
        # After hours on Thursday: Friday's hours.
        ("report_issue", "respond", local(2026, 11, 26, 20), local(2026, 11, 27, 17, 30)),
        # 3 working days from Wednesday 16:00 skip the weekend.
        ("report_issue", "resolve", local(2026, 11, 25, 16), local(2026, 11, 30, 16)),
        # The day before the National Day week: due after it.
        ("report_issue", "respond", local(2026, 9, 30, 10), local(2026, 10, 8, 10)),
        # Friday 9 October + 1 working day: the Saturday worked instead.
        ("report_issue", "respond", local(2026, 10, 9, 10), local(2026, 10, 10, 10)),
        # 4 working hours across the lunch break and the evening.
        ("human_handoff", "respond", local(2026, 11, 26, 11), local(2026, 11, 26, 16, 30)),
        ("human_handoff", "respond", local(2026, 11, 26, 16), local(2026, 11, 27, 11, 30)),
        # Calendar hours ignore office hours.
        ("microloan", "resolve", local(2026, 11, 28, 15), local(2026, 11, 29, 15)),
    ],
)
def test_due_times_in_working_time(kind: str, stage: str, start: datetime, due: datetime) -> None:
    assert RULES.due_at(kind, stage, start) == due


def test_a_kind_without_a_deadline_has_none_unless_a_default_is_set() -> None:
    start = local(2026, 11, 27, 10)
    assert RULES.due_at("legal_aid", "resolve", start) is None
    assert RULES.due_at("human_handoff", "resolve", start) is None
    fallback = RULES.with_default_resolve(72)
    assert fallback.due_at("legal_aid", "resolve", start) == local(2026, 11, 30, 10)
    assert fallback.due_at("legal_aid", "respond", start) is None


def test_the_shipped_data_is_valid_and_gives_every_kind_deadlines() -> None:
    assert check_deadlines(default_data_dir()) == []
    loaded = Deadlines.load(default_data_dir())
    assert loaded.working_time.day_minutes == 7 * 60
    for kind in ("report_issue", "dispute_mediation", "legal_aid", "microloan"):
        assert set(loaded.due[kind]) == {"respond", "resolve"}


@pytest.mark.parametrize(
    ("routes", "working", "problem"),
    [
        ({"k": {"department": "d", "due": {"respond": "soon"}}}, None, "due.respond"),
        ({"k": {"department": "d", "due": {"finish": "1 day"}}}, None, "unknown due stage"),
        ({}, {"hours": ["17:00-09:00"]}, "ends before it starts"),
        ({}, {"hours": ["09:00-12:00"], "holidays": ["国庆"]}, "not a date"),
    ],
)
def test_bad_deadline_data_is_named(routes: dict, working: dict | None, problem: str) -> None:
    with pytest.raises(DeadlineError, match=problem):
        Deadlines.from_data(routes, working, "routing.yml", "working_time.yml")


def _open_report(store: Store, user: str) -> str:
    ticket, _ = store.create_ticket(
        kind="report_issue",
        department="网格服务站",
        channel="test",
        user_id=user,
        phone=None,
        fields={"description": "路灯不亮"},
    )
    return ticket.id


def test_a_ticket_is_due_to_respond_then_due_to_resolve(tmp_path: Path) -> None:
    store = Store(tmp_path / "t.db")
    store.set_due_rule(RULES.rule())
    ticket = store.get_ticket(_open_report(store, "u1"))
    created = parse_iso(ticket.created_at)
    assert ticket.due_at == iso(RULES.due_at("report_issue", "respond", created))  # type: ignore[arg-type]
    store.record_first_response(ticket.id, iso(created))
    moved = store.get_ticket(ticket.id)
    assert moved.due_at == iso(RULES.due_at("report_issue", "resolve", created))  # type: ignore[arg-type]
    assert moved.first_response_at is not None
    store.close()


def test_two_sweepers_racing_write_one_overdue_event_per_ticket(tmp_path: Path) -> None:
    """Two `tongxin tickets sweep` processes at once, three times over."""
    path = tmp_path / "t.db"
    store = Store(path)
    store.set_due_rule(RULES.rule())
    ids = [_open_report(store, f"u{i}") for i in range(30)]
    store._exec("UPDATE tickets SET due_at = '2020-01-01T00:00:00.000000+00:00'")
    store._exec("UPDATE tickets SET status = 'resolved' WHERE id = ?", (ids[0],))
    tongxin = Path(sys.executable).with_name("tongxin")
    marked: list[str] = []
    for _ in range(3):
        runs = [
            subprocess.Popen(
                [str(tongxin), "tickets", "sweep", "--db", str(path), "--json"],
                stdout=subprocess.PIPE,
                text=True,
            )
            for _ in range(2)
        ]
        for run in runs:
            out, _ = run.communicate(timeout=120)
            assert run.returncode == 0
            marked += json.loads(out)
    assert sorted(marked) == sorted(ids[1:])  # every open ticket once, the resolved one never
    events = store.events_after(0, action="overdue", limit=1000)
    assert sorted(e.ticket_id for e in events) == sorted(ids[1:])
    assert all(store.get_ticket(i).overdue_at for i in ids[1:])
    store.close()


def test_a_ticket_not_yet_due_is_not_overdue(tmp_path: Path) -> None:
    store = Store(tmp_path / "t.db")
    store.set_due_rule(RULES.rule())
    ticket = store.get_ticket(_open_report(store, "u1"))
    assert ticket.due_at is not None
    before = parse_iso(ticket.due_at).replace(microsecond=0)
    assert sweep_overdue(store, RULES, now=before) == []
    assert store.events_after(0, action="overdue") == []
    store.close()
