"""Due times of tickets: each kind's deadlines from data/routing.yml (`due:`),
counted in working time from data/working_time.yml (office hours, weekdays,
holidays and the weekend days worked instead, 调休), and the sweeper that
records one `overdue` event per ticket when it passes its due time.

Durations read "1 working day", "4 working hours" or "24 hours". A working day
is one day's office hours: a report made on Friday at 10:00 with "1 working
day" is due on Monday at 10:00; one made on Saturday is due at the end of
Monday's hours.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import yaml

from flows.store import LOCAL_TZ, Store, iso, parse_iso, utcnow

STAGES: tuple[str, ...] = ("respond", "resolve")
OPEN_STATUSES: tuple[str, ...] = ("open", "assigned", "in_progress")
SWEEPER_ACTOR = "system"
OVERDUE_ACTION = "overdue"

_DURATION = re.compile(
    r"^\s*(\d+(?:\.\d+)?)\s*"
    r"(working days?|working hours?|hours?|days?|个?工作日|个?工作小时|小时|天)\s*$"
)
_HOURS = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")


class DeadlineError(ValueError):
    """A malformed due time or working-time file; the message names the item."""


@dataclass(frozen=True)
class Duration:
    amount: float
    working: bool  # counted in office hours (else calendar time)
    unit: str  # "day" or "hour"

    @classmethod
    def parse(cls, text: Any, where: str) -> Duration:
        m = _DURATION.match(str(text))
        if m is None or float(m.group(1)) <= 0:
            raise DeadlineError(
                f"{where}: {text!r} is not a duration like '1 working day', "
                "'4 working hours' or '24 hours'"
            )
        unit_text = m.group(2)
        working = "working" in unit_text or "工作" in unit_text
        unit = "hour" if ("hour" in unit_text or "小时" in unit_text) else "day"
        return cls(float(m.group(1)), working, unit)


@dataclass(frozen=True)
class WorkingTime:
    """Office hours as intervals of local time, the weekdays worked (Monday 1),
    holidays, and weekend days worked instead of a holiday."""

    hours: tuple[tuple[time, time], ...] = ((time(9), time(12)), (time(13, 30), time(17, 30)))
    weekdays: frozenset[int] = frozenset({1, 2, 3, 4, 5})
    holidays: frozenset[date] = frozenset()
    extra_workdays: frozenset[date] = frozenset()

    @property
    def day_minutes(self) -> float:
        return sum(_minutes(a, b) for a, b in self.hours)

    def is_workday(self, day: date) -> bool:
        if day in self.extra_workdays:
            return True
        return day.isoweekday() in self.weekdays and day not in self.holidays

    def add(self, start: datetime, minutes: float) -> datetime:
        """`start` plus `minutes` of office time (local time zone)."""
        t = start.astimezone(LOCAL_TZ)
        remaining = timedelta(minutes=minutes)
        day = t.date()
        # Ten years of days is far beyond any deadline; the bound catches a
        # calendar with no working day at all.
        for _ in range(3660):
            if self.is_workday(day):
                for a, b in self.hours:
                    begin = datetime.combine(day, a, tzinfo=LOCAL_TZ)
                    end = datetime.combine(day, b, tzinfo=LOCAL_TZ)
                    if end <= t:
                        continue
                    begin = max(begin, t)
                    if remaining <= end - begin:
                        return begin + remaining
                    remaining -= end - begin
            day += timedelta(days=1)
            t = datetime.combine(day, time.min, tzinfo=LOCAL_TZ)
        raise DeadlineError("the working-time calendar has no working day in ten years")

    @classmethod
    def from_data(cls, raw: Any, where: str) -> WorkingTime:
        if raw is None:
            return cls()
        if not isinstance(raw, dict):
            raise DeadlineError(f"{where}: expected a mapping with hours, weekdays, holidays")
        hours = []
        for item in raw.get("hours") or []:
            m = _HOURS.match(str(item))
            if m is None:
                raise DeadlineError(f"{where}: hours item {item!r} is not like '09:00-12:00'")
            a = time(int(m.group(1)), int(m.group(2)))
            b = time(int(m.group(3)), int(m.group(4)))
            if b <= a:
                raise DeadlineError(f"{where}: hours item {item!r} ends before it starts")
            hours.append((a, b))
        if not hours:
            raise DeadlineError(f"{where}: 'hours' needs at least one interval")
        weekdays = frozenset(int(d) for d in raw.get("weekdays") or [1, 2, 3, 4, 5])
        if not weekdays <= set(range(1, 8)):
            raise DeadlineError(f"{where}: weekdays are 1 (Monday) to 7 (Sunday)")
        return cls(
            hours=tuple(sorted(hours)),
            weekdays=weekdays,
            holidays=_dates(raw.get("holidays"), f"{where}: holidays"),
            extra_workdays=_dates(raw.get("extra_workdays"), f"{where}: extra_workdays"),
        )


def _minutes(a: time, b: time) -> float:
    return (b.hour * 60 + b.minute) - (a.hour * 60 + a.minute)


def _dates(raw: Any, where: str) -> frozenset[date]:
    out = set()
    for item in raw or []:
        if isinstance(item, date):
            out.add(item)
            continue
        try:
            out.add(date.fromisoformat(str(item)))
        except ValueError as exc:
            raise DeadlineError(f"{where}: {item!r} is not a date like 2026-10-01") from exc
    return frozenset(out)


@dataclass(frozen=True)
class Deadlines:
    """Per-kind due durations (`respond`: first contact, `resolve`: done)."""

    working_time: WorkingTime = field(default_factory=WorkingTime)
    due: Mapping[str, Mapping[str, Duration]] = field(default_factory=dict)
    # For a kind without `due` (TONGXIN_OVERDUE_HOURS): calendar time to resolve.
    default_resolve: Duration | None = None

    def with_default_resolve(self, hours: float) -> Deadlines:
        return Deadlines(self.working_time, self.due, Duration(hours, False, "hour"))

    def due_at(self, kind: str, stage: str, start: datetime) -> datetime | None:
        """When a ticket of `kind` is due for `stage`, counted from `start`; None
        when the kind has no such deadline."""
        duration = self.due.get(kind, {}).get(stage)
        if duration is None and stage == "resolve":
            duration = self.default_resolve
        if duration is None:
            return None
        hours = duration.amount * (24 if duration.unit == "day" else 1)
        if not duration.working:
            return start + timedelta(hours=hours)
        minutes = (
            duration.amount * self.working_time.day_minutes
            if duration.unit == "day"
            else duration.amount * 60
        )
        return self.working_time.add(start, minutes)

    @classmethod
    def from_data(
        cls, raw_routes: Any, raw_working: Any, routes_src: str, working_src: str
    ) -> Deadlines:
        working = WorkingTime.from_data(raw_working, working_src)
        due: dict[str, dict[str, Duration]] = {}
        for kind, route in (raw_routes or {}).items():
            spec = route.get("due") if isinstance(route, dict) else None
            if spec is None:
                continue
            if not isinstance(spec, dict):
                raise DeadlineError(f"{routes_src}: item {kind!r}: 'due' needs respond/resolve")
            unknown = set(spec) - set(STAGES)
            if unknown:
                raise DeadlineError(
                    f"{routes_src}: item {kind!r}: unknown due stage(s) {sorted(unknown)}; "
                    f"use {', '.join(STAGES)}"
                )
            due[str(kind)] = {
                stage: Duration.parse(value, f"{routes_src}: item {kind!r}: due.{stage}")
                for stage, value in spec.items()
            }
        return cls(working, due)

    @classmethod
    def load(cls, data_dir: Path) -> Deadlines:
        routes_path = data_dir / "routing.yml"
        working_path = data_dir / "working_time.yml"
        try:
            raw_routes = yaml.safe_load(routes_path.read_text(encoding="utf-8"))
            raw_working = (
                yaml.safe_load(working_path.read_text(encoding="utf-8"))
                if working_path.is_file()
                else None
            )
        except (OSError, yaml.YAMLError) as exc:
            raise DeadlineError(f"{data_dir}: cannot read routing/working time: {exc}") from exc
        return cls.from_data(raw_routes, raw_working, str(routes_path), str(working_path))

    def rule(self) -> Callable[[str, str, datetime], datetime | None]:
        return self.due_at


def check_deadlines(data_dir: Path) -> list[str]:
    """Problems in the deadlines and working-time data, for `tongxin check-data`."""
    try:
        Deadlines.load(data_dir)
    except DeadlineError as exc:
        return [str(exc)]
    return []


def sweep_overdue(store: Store, deadlines: Deadlines, *, now: datetime | None = None) -> list[str]:
    """Record one `overdue` event for each open ticket past its due time that
    has none yet; returns their ids. Safe to run from several processes at
    once: the claim is a conditional UPDATE, so only one of them writes."""
    now = now or utcnow()
    store.set_due_rule(deadlines.rule())
    store.fill_due_times()
    marks = ",".join("?" * len(OPEN_STATUSES))
    rows = store._rows(
        f"SELECT id FROM tickets WHERE status IN ({marks}) AND due_at < ? "
        "AND overdue_at IS NULL ORDER BY due_at",
        (*OPEN_STATUSES, iso(now)),
    )
    marked = []
    for row in rows:
        if store.mark_overdue(row["id"], now=now, actor=SWEEPER_ACTOR):
            marked.append(row["id"])
    return marked


def due_note(due_at: str | None) -> str:
    if not due_at:
        return ""
    return parse_iso(due_at).astimezone(LOCAL_TZ).strftime("%Y-%m-%d %H:%M")
