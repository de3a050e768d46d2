"""The service figures of the dashboard, `tongxin tickets stats` and
`GET /staff/api/stats`: 办结率 (resolved + closed over all tickets but the
cancelled ones), 满意率 ((satisfied + neutral) over answered surveys, shown
with the number of answers), tickets per day and kind, per department and
month, medians of time to first response and to resolution, overdue now, and
the topics residents ask about most.

Every figure comes from a handful of GROUP BY queries over stored columns
(`created_day`, `resolve_hours`, `first_response_hours`, `due_at`): no per-row
date arithmetic, so 100,000 tickets take well under the 300 ms target
(bench/stats_bench.py). The SQL is standard, for PostgreSQL too.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

from flows.store import LOCAL_TZ, Store, iso, utcnow

OPEN_STATUSES: tuple[str, ...] = ("open", "assigned", "in_progress")
COMPLETED: tuple[str, ...] = ("resolved", "closed")
CONTENT: tuple[str, ...] = ("satisfied", "neutral")
SATISFACTION: tuple[str, ...] = ("satisfied", "neutral", "unsatisfied")
TOP_TOPICS = 10
# Not topics: what the NLU says when it understood nothing or only a greeting.
_NOT_TOPICS = frozenset({"nlu_fallback", "greet", "goodbye", "thanks", "affirm", "deny"})


@dataclass(frozen=True)
class StatsFilter:
    """Local (China) days, both ends included; None: open-ended / every desk."""

    since: date | None = None
    until: date | None = None
    departments: frozenset[str] | None = None  # a staff member's own desks
    department: str | None = None  # the filter chosen on the page

    def where(self) -> tuple[str, list[Any]]:
        parts: list[str] = []
        params: list[Any] = []
        if self.departments is not None:
            parts.append(f"department IN ({','.join('?' * len(self.departments)) or 'NULL'})")
            params.extend(sorted(self.departments))
        if self.department:
            parts.append("department = ?")
            params.append(self.department)
        if self.since:
            parts.append("created_day >= ?")
            params.append(self.since.isoformat())
        if self.until:
            parts.append("created_day <= ?")
            params.append(self.until.isoformat())
        return (" WHERE " + " AND ".join(parts)) if parts else "", params


def _rate(part: int, whole: int) -> float | None:
    return part / whole if whole else None


BUCKET_MINUTES = 15
Histogram = dict[int, int]  # bucket (quarter hours) -> tickets


def _histograms(
    store: Store, column: str, and_where: str, params: list[Any]
) -> dict[str, Histogram]:
    out: dict[str, Histogram] = defaultdict(dict)
    bucket = f"{column} / {BUCKET_MINUTES}"  # integer division in SQLite and PostgreSQL
    for r in store._rows(
        f"SELECT department, {bucket} AS b, COUNT(*) AS n"
        f" FROM tickets{and_where}{column} IS NOT NULL GROUP BY department, {bucket}",
        tuple(params),
    ):
        out[r["department"]][int(r["b"])] = int(r["n"])
    return out


def _merged(histograms: dict[str, Histogram]) -> Histogram:
    total: Counter[int] = Counter()
    for h in histograms.values():
        total.update(h)
    return dict(total)


def _median(histogram: Histogram | None) -> float | None:
    """The median in hours, to the quarter hour (the mean of the two middle
    values when the count is even, as statistics.median)."""
    if not histogram:
        return None
    n = sum(histogram.values())
    wanted = [(n - 1) // 2, n // 2]
    found: list[int] = []
    seen = 0
    for bucket in sorted(histogram):
        seen += histogram[bucket]
        while wanted and wanted[0] < seen:
            found.append(bucket)
            wanted.pop(0)
    return sum(found) / 2 * BUCKET_MINUTES / 60


def _days(since: date, until: date) -> list[str]:
    return [(since + timedelta(days=i)).isoformat() for i in range((until - since).days + 1)]


def local_today(now: datetime | None = None) -> date:
    return (now or utcnow()).astimezone(LOCAL_TZ).date()


def compute_stats(store: Store, f: StatsFilter, *, now: datetime | None = None) -> dict[str, Any]:
    now = now or utcnow()
    where, params = f.where()
    and_where = where + (" AND " if where else " WHERE ")
    by_kind: Counter[str] = Counter()
    by_status: Counter[str] = Counter()
    by_kind_status: dict[str, Counter[str]] = defaultdict(Counter)
    answers: Counter[str] = Counter()
    dept_month: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)
    for r in store._rows(
        "SELECT kind, status, department, substr(created_day, 1, 7) AS month, satisfaction,"
        f" COUNT(*) AS n FROM tickets{where} GROUP BY kind, status, department,"
        " substr(created_day, 1, 7), satisfaction",
        tuple(params),
    ):
        n = int(r["n"])
        by_kind[r["kind"]] += n
        by_kind_status[r["kind"]][r["status"]] += n
        by_status[r["status"]] += n
        cell = dept_month[(r["department"], r["month"] or "")]
        cell["total"] += n
        if r["status"] != "cancelled":
            cell["handled"] += n
        if r["status"] in COMPLETED:
            cell["completed"] += n
        if r["satisfaction"] in SATISFACTION:
            answers[r["satisfaction"]] += n
            cell["answers"] += n
            cell["content"] += n if r["satisfaction"] in CONTENT else 0
    handled = sum(n for s, n in by_status.items() if s != "cancelled")
    completed = sum(by_status[s] for s in COMPLETED)
    answered = sum(answers.values())

    # One query per open status: each is a range in the (status, department,
    # due_at) index, where one IN query made the planner scan every ticket.
    overdue_by_dept: Counter[str] = Counter()
    for status in OPEN_STATUSES:
        for r in store._rows(
            f"SELECT department, COUNT(*) AS n FROM tickets{and_where}status = ?"
            " AND due_at < ? GROUP BY department",
            (*params, status, iso(now)),
        ):
            overdue_by_dept[r["department"]] += int(r["n"])
    escalated = store._one(
        f"SELECT COUNT(*) AS n FROM tickets{and_where}escalated_at IS NOT NULL", tuple(params)
    )

    # Medians from histograms of quarter hours per department: the database
    # counts, Python walks a few hundred buckets instead of every ticket.
    resolve = _histograms(store, "resolve_minutes", and_where, params)
    respond = _histograms(store, "first_response_minutes", and_where, params)

    today = local_today(now)
    until = f.until or today
    since = f.since or (until - timedelta(days=29))
    per_day: dict[str, dict[str, int]] = {d: {} for d in _days(since, until)}
    day_filter = StatsFilter(since, until, f.departments, f.department)
    day_where, day_params = day_filter.where()
    for r in store._rows(
        f"SELECT created_day, kind, COUNT(*) AS n FROM tickets{day_where}"
        " GROUP BY created_day, kind",
        tuple(day_params),
    ):
        per_day.setdefault(r["created_day"], {})[r["kind"]] = int(r["n"])

    departments = sorted({d for d, _ in dept_month} | set(overdue_by_dept))
    by_department = []
    for dept in departments:
        cells = [c for (d, _), c in dept_month.items() if d == dept]
        tot = Counter[str]()
        for c in cells:
            tot.update(c)
        by_department.append(
            {
                "department": dept,
                "total": tot["total"],
                "completed": tot["completed"],
                "completion_rate": _rate(tot["completed"], tot["handled"]),
                "satisfaction_rate": _rate(tot["content"], tot["answers"]),
                "satisfaction_answers": tot["answers"],
                "overdue": overdue_by_dept.get(dept, 0),
                "median_hours_to_first_response": _median(respond.get(dept)),
                "median_hours_to_resolve": _median(resolve.get(dept)),
            }
        )
    by_department_month = [
        {
            "department": dept,
            "month": month,
            "total": c["total"],
            "completed": c["completed"],
            "completion_rate": _rate(c["completed"], c["handled"]),
            "satisfaction_rate": _rate(c["content"], c["answers"]),
            "satisfaction_answers": c["answers"],
        }
        for (dept, month), c in sorted(dept_month.items())
    ]
    median_resolve = _median(_merged(resolve))
    return {
        "since": f.since.isoformat() if f.since else None,
        "until": f.until.isoformat() if f.until else None,
        "department": f.department,
        "total": sum(by_status.values()),
        "completed": completed,
        "completion_rate": _rate(completed, handled),
        "satisfaction_rate": _rate(sum(answers[s] for s in CONTENT), answered),
        "satisfaction_answers": answered,
        "satisfaction": {s: answers[s] for s in SATISFACTION},
        "by_kind": dict(sorted(by_kind.items())),
        "by_status": dict(sorted(by_status.items())),
        "overdue": sum(overdue_by_dept.values()),
        "escalated": int(escalated["n"]) if escalated else 0,
        "median_hours_to_resolve": median_resolve,
        "median_resolve_hours": median_resolve,  # the name `tickets stats` used before
        "median_hours_to_first_response": _median(_merged(respond)),
        "by_kind_status": {k: dict(v) for k, v in sorted(by_kind_status.items())},
        "by_department": by_department,
        "by_department_month": by_department_month,
        "per_day": per_day,
        "top_topics": top_topics(store, since, until),
    }


def top_topics(store: Store, since: date, until: date) -> list[dict[str, Any]]:
    """The intents residents' messages were read as most often, in the days."""
    start = iso(datetime.combine(since, time.min, tzinfo=LOCAL_TZ))
    end = iso(datetime.combine(until + timedelta(days=1), time.min, tzinfo=LOCAL_TZ))
    rows = store._rows(
        "SELECT intent, COUNT(*) AS n FROM message_log WHERE at >= ? AND at < ?"
        " AND direction = 'in' AND intent IS NOT NULL GROUP BY intent ORDER BY n DESC, intent",
        (start, end),
    )
    return [
        {"topic": r["intent"], "count": int(r["n"])} for r in rows if r["intent"] not in _NOT_TOPICS
    ][:TOP_TOPICS]


def _pct(rate: float | None) -> str:
    return "-" if rate is None else f"{rate:.1%}"


def _hours(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value * 60:.0f} min" if value < 1 else f"{value:.1f} h"


def format_stats(s: dict[str, Any]) -> str:
    """`tickets stats` as text: the headline figures, then per department."""
    span = f"{s['since'] or '…'} – {s['until'] or '…'}"
    lines = [
        f"tickets {span}{'  ' + s['department'] if s['department'] else ''}: {s['total']}",
        f"completion rate 办结率: {_pct(s['completion_rate'])}"
        f"  ({s['completed']} resolved or closed; cancelled not counted)",
        f"satisfaction 满意率: {_pct(s['satisfaction_rate'])}"
        f"  ({s['satisfaction_answers']} answers: {s['satisfaction']['satisfied']} satisfied,"
        f" {s['satisfaction']['neutral']} neutral, {s['satisfaction']['unsatisfied']} unsatisfied)",
        f"overdue now: {s['overdue']}   escalated to an admin: {s['escalated']}",
        f"median time to first response: {_hours(s['median_hours_to_first_response'])}",
        f"median time to resolve: {_hours(s['median_hours_to_resolve'])}",
        "by status: " + ", ".join(f"{k} {v}" for k, v in s["by_status"].items()),
        "by kind: " + ", ".join(f"{k} {v}" for k, v in s["by_kind"].items()),
        "",
    ]
    for d in s["by_department"]:
        lines.append(
            f"{d['department']}: {d['total']} tickets, 办结率 {_pct(d['completion_rate'])},"
            f" 满意率 {_pct(d['satisfaction_rate'])} ({d['satisfaction_answers']} answers),"
            f" overdue {d['overdue']},"
            f" first response {_hours(d['median_hours_to_first_response'])},"
            f" resolve {_hours(d['median_hours_to_resolve'])}"
        )
    return "\n".join(lines) + "\n"
