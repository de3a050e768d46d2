"""The service figures against a small fixture computed by hand."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from flows.stats import StatsFilter, compute_stats
from flows.store import Store

NOW = datetime(2026, 11, 30, 4, 0, tzinfo=UTC)
PAST = "2026-11-29T00:00:00.000000+00:00"
LATER = "2026-12-05T00:00:00.000000+00:00"

# department, kind, status, created_day, first response h, resolve h, satisfaction, due
ROWS = [
    ("A", "report_issue", "resolved", "2026-11-02", 1.0, 2.0, "satisfied", LATER),
    ("A", "report_issue", "closed", "2026-11-10", 3.0, 4.0, "unsatisfied", LATER),
    ("A", "legal_aid", "cancelled", "2026-11-11", None, None, None, LATER),
    ("A", "legal_aid", "open", "2026-11-20", None, None, None, PAST),  # overdue
    ("B", "microloan", "resolved", "2026-10-15", 5.0, 10.0, "neutral", LATER),
    ("B", "microloan", "in_progress", "2026-11-25", 7.0, None, None, LATER),
]


def _minutes(hours: float | None) -> int | None:
    return None if hours is None else int(hours * 60)


@pytest.fixture
def store(tmp_path: Path) -> Store:
    s = Store(tmp_path / "t.db")
    for i, (dept, kind, status, day, first, resolve, sat, due) in enumerate(ROWS):
        ticket, _ = s.create_ticket(
            kind=kind, department=dept, channel="test", user_id=f"u{i}", phone=None, fields={}
        )
        s._exec(
            "UPDATE tickets SET status = ?, created_day = ?, first_response_minutes = ?,"
            " resolve_minutes = ?, satisfaction = ?, due_at = ? WHERE id = ?",
            (status, day, _minutes(first), _minutes(resolve), sat, due, ticket.id),
        )
    for intent, n in (("report_issue", 3), ("faq", 5), ("nlu_fallback", 9), ("legal_aid", 1)):
        for _ in range(n):
            s._exec(
                "INSERT INTO message_log(at, channel, user_id, direction, text, intent)"
                " VALUES ('2026-11-20T02:00:00+00:00', 'test', 'x', 'in', '…', ?)",
                (intent,),
            )
    return s


def test_all_figures_by_hand(store: Store) -> None:
    s = compute_stats(store, StatsFilter(until=date(2026, 11, 30)), now=NOW)
    assert s["total"] == 6 and s["completed"] == 3
    assert s["completion_rate"] == pytest.approx(3 / 5)  # the cancelled one counts for neither
    assert s["satisfaction_rate"] == pytest.approx(2 / 3) and s["satisfaction_answers"] == 3
    assert s["satisfaction"] == {"satisfied": 1, "neutral": 1, "unsatisfied": 1}
    assert s["overdue"] == 1
    assert s["median_hours_to_resolve"] == pytest.approx(4.0)  # of 2, 4, 10
    assert s["median_hours_to_first_response"] == pytest.approx(4.0)  # of 1, 3, 5, 7
    assert s["by_status"] == {
        "cancelled": 1,
        "closed": 1,
        "in_progress": 1,
        "open": 1,
        "resolved": 2,
    }
    assert s["by_kind"] == {"legal_aid": 2, "microloan": 2, "report_issue": 2}
    a, b = s["by_department"]
    assert (a["department"], a["completion_rate"], a["satisfaction_rate"]) == ("A", 2 / 3, 0.5)
    assert (a["overdue"], a["median_hours_to_resolve"]) == (1, 3.0)
    assert (b["completion_rate"], b["satisfaction_rate"], b["median_hours_to_resolve"]) == (
        0.5,
        1.0,
        10.0,
    )
    months = {(r["department"], r["month"]): r for r in s["by_department_month"]}
    assert months[("B", "2026-10")]["completion_rate"] == 1.0
    assert months[("B", "2026-11")]["completion_rate"] == 0.0
    # The last 30 days end on the 30th: the October ticket is not drawn per day.
    assert len(s["per_day"]) == 30 and s["per_day"]["2026-11-02"] == {"report_issue": 1}
    assert "2026-10-15" not in s["per_day"]
    assert s["top_topics"] == [
        {"topic": "faq", "count": 5},
        {"topic": "report_issue", "count": 3},
        {"topic": "legal_aid", "count": 1},
    ]


def test_filters_by_department_and_dates(store: Store) -> None:
    only_b = compute_stats(store, StatsFilter(department="B"), now=NOW)
    assert (only_b["total"], only_b["completion_rate"], only_b["overdue"]) == (2, 0.5, 0)
    november = compute_stats(
        store, StatsFilter(since=date(2026, 11, 1), until=date(2026, 11, 15)), now=NOW
    )
    assert november["total"] == 3 and november["completion_rate"] == 1.0
    assert november["satisfaction_rate"] == 0.5
    mine = compute_stats(store, StatsFilter(departments=frozenset({"B"})), now=NOW)
    assert mine["total"] == 2


def test_an_empty_database_has_no_rates(tmp_path: Path) -> None:
    s = compute_stats(Store(tmp_path / "e.db"), StatsFilter(), now=NOW)
    assert (s["total"], s["completion_rate"], s["satisfaction_rate"]) == (0, None, None)
    assert s["median_hours_to_resolve"] is None and s["overdue"] == 0
