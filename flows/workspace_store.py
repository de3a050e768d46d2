"""What the staff workspace keeps and asks beside the core store: staff
accounts and their sessions, volunteer contact marks, and the queue's
filtered, searched and paged ticket queries.

Its tables are created here with `IF NOT EXISTS` rather than as a step of
`flows.store.MIGRATIONS`, so that the core schema's versions stay the core's;
the SQL lives in this one module so that another backend replaces one file.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

from flows.stats import StatsFilter, compute_stats
from flows.store import LOCAL_TZ, Store, StoreError, Ticket, _ticket_from_row, iso, utcnow

ROLES: tuple[str, ...] = ("admin", "staff", "viewer")
OPEN_STATUSES: tuple[str, ...] = ("open", "assigned", "in_progress")

_SCHEMA: tuple[str, ...] = (
    "CREATE TABLE IF NOT EXISTS staff_accounts ("
    " username TEXT PRIMARY KEY, password_hash TEXT NOT NULL, role TEXT NOT NULL,"
    " department TEXT, disabled INTEGER NOT NULL DEFAULT 0,"
    " created_at TEXT NOT NULL, updated_at TEXT NOT NULL)",
    # Only a hash of the session token is stored: a copy of the database file
    # opens no session.
    "CREATE TABLE IF NOT EXISTS staff_sessions ("
    " token_hash TEXT PRIMARY KEY, username TEXT NOT NULL, csrf_token TEXT NOT NULL,"
    " created_at TEXT NOT NULL, expires_at TEXT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS ix_staff_sessions_user ON staff_sessions(username)",
    "CREATE TABLE IF NOT EXISTS volunteer_contacts ("
    " volunteer_id TEXT PRIMARY KEY, contacted_by TEXT NOT NULL, contacted_at TEXT NOT NULL)",
    # The ticket page reads one resident's log; the queue sorts by date.
    "CREATE INDEX IF NOT EXISTS ix_message_log_user ON message_log(channel, user_id, id)",
    "CREATE INDEX IF NOT EXISTS ix_tickets_created ON tickets(created_at)",
    "CREATE INDEX IF NOT EXISTS ix_tickets_kind ON tickets(kind)",
    "CREATE INDEX IF NOT EXISTS ix_tickets_assignee ON tickets(assignee)",
)


class AccountError(StoreError):
    """An account that cannot be created or changed as asked."""


@dataclass(frozen=True)
class StaffAccount:
    username: str
    password_hash: str
    role: str
    department: str | None
    disabled: bool
    created_at: str
    updated_at: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "username": self.username,
            "role": self.role,
            "department": self.department,
            "disabled": self.disabled,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }


@dataclass(frozen=True)
class StaffSession:
    username: str
    csrf_token: str
    expires_at: str


@dataclass(frozen=True)
class TicketFilter:
    """The queue's filters; None means "any". Dates are local (China) days."""

    status: str | None = None
    kind: str | None = None
    department: str | None = None
    assignee: str | None = None
    q: str | None = None
    since: date | None = None
    until: date | None = None
    overdue: bool = False


@dataclass(frozen=True)
class QueuePage:
    tickets: list[Ticket]
    total: int
    overdue_ids: frozenset[str]
    counts: dict[str, int]  # per status, over the filter without its status (if asked)


def _account(row: dict[str, Any]) -> StaffAccount:
    return StaffAccount(
        username=row["username"],
        password_hash=row["password_hash"],
        role=row["role"],
        department=row["department"],
        disabled=bool(row["disabled"]),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _local_day_start(day: date) -> str:
    return iso(datetime.combine(day, time.min, tzinfo=LOCAL_TZ))


class WorkspaceStore:
    """The workspace's queries on one core `Store` (same file, same locks)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        with store.transaction():
            for statement in _SCHEMA:
                store._exec(statement)

    # -- accounts -------------------------------------------------------

    def add_account(
        self, username: str, password_hash: str, role: str, department: str | None
    ) -> StaffAccount:
        if role not in ROLES:
            raise AccountError(f"unknown role {role!r}; one of: {', '.join(ROLES)}")
        now = iso(utcnow())
        with self.store.transaction():
            if self.get_account(username) is not None:
                raise AccountError(f"an account named {username!r} already exists")
            self.store._exec(
                "INSERT INTO staff_accounts(username, password_hash, role, department, disabled,"
                " created_at, updated_at) VALUES (?, ?, ?, ?, 0, ?, ?)",
                (username, password_hash, role, department, now, now),
            )
        account = self.get_account(username)
        assert account is not None
        return account

    def get_account(self, username: str) -> StaffAccount | None:
        row = self.store._one("SELECT * FROM staff_accounts WHERE username = ?", (username,))
        return None if row is None else _account(row)

    def list_accounts(self) -> list[StaffAccount]:
        rows = self.store._rows("SELECT * FROM staff_accounts ORDER BY username")
        return [_account(r) for r in rows]

    def _require(self, username: str) -> StaffAccount:
        account = self.get_account(username)
        if account is None:
            raise AccountError(f"no account named {username!r}")
        return account

    def set_password_hash(self, username: str, password_hash: str) -> None:
        """A new password ends every session of the account."""
        with self.store.transaction():
            self._require(username)
            self.store._exec(
                "UPDATE staff_accounts SET password_hash = ?, updated_at = ? WHERE username = ?",
                (password_hash, iso(utcnow()), username),
            )
            self.end_sessions(username)

    def disable(self, username: str) -> None:
        with self.store.transaction():
            self._require(username)
            self.store._exec(
                "UPDATE staff_accounts SET disabled = 1, updated_at = ? WHERE username = ?",
                (iso(utcnow()), username),
            )
            self.end_sessions(username)

    # -- sessions -------------------------------------------------------

    def add_session(self, token: str, username: str, csrf_token: str, ttl: timedelta) -> None:
        now = utcnow()
        with self.store.transaction():
            self.store._exec("DELETE FROM staff_sessions WHERE expires_at <= ?", (iso(now),))
            self.store._exec(
                "INSERT INTO staff_sessions(token_hash, username, csrf_token, created_at,"
                " expires_at) VALUES (?, ?, ?, ?, ?)",
                (_token_hash(token), username, csrf_token, iso(now), iso(now + ttl)),
            )

    def session(self, token: str) -> tuple[StaffSession, StaffAccount] | None:
        """The live session of an enabled account for this token, if any."""
        row = self.store._one(
            "SELECT s.username, s.csrf_token, s.expires_at, a.* FROM staff_sessions s"
            " JOIN staff_accounts a ON a.username = s.username"
            " WHERE s.token_hash = ? AND s.expires_at > ? AND a.disabled = 0",
            (_token_hash(token), iso(utcnow())),
        )
        if row is None:
            return None
        return StaffSession(row["username"], row["csrf_token"], row["expires_at"]), _account(row)

    def end_session(self, token: str) -> None:
        self.store._exec("DELETE FROM staff_sessions WHERE token_hash = ?", (_token_hash(token),))

    def end_sessions(self, username: str) -> None:
        self.store._exec("DELETE FROM staff_sessions WHERE username = ?", (username,))

    # -- login throttling (shared by every server process) --------------

    def failures(self, key: str) -> int:
        raw = self.store.kv_get(f"login_fail:{key}")
        return int(raw) if raw else 0

    def add_failure(self, key: str, window_s: float) -> int:
        with self.store.transaction():
            count = self.failures(key) + 1
            self.store.kv_set(f"login_fail:{key}", str(count), ttl_s=window_s)
            return count

    def clear_failures(self, key: str) -> None:
        self.store.kv_delete(f"login_fail:{key}")

    # -- the queue ------------------------------------------------------

    def _where(
        self, f: TicketFilter, departments: frozenset[str] | None, overdue_before: str
    ) -> tuple[str, list[Any]]:
        where: list[str] = []
        params: list[Any] = []
        if departments is not None:
            where.append(f"department IN ({','.join('?' * len(departments))})")
            params.extend(sorted(departments))
        for column, value in (
            ("status", f.status),
            ("kind", f.kind),
            ("department", f.department),
        ):
            if value:
                where.append(f"{column} = ?")
                params.append(value)
        if f.assignee == "-":
            where.append("assignee IS NULL")
        elif f.assignee:
            where.append("assignee = ?")
            params.append(f.assignee)
        if f.since:
            where.append("created_at >= ?")
            params.append(_local_day_start(f.since))
        if f.until:
            where.append("created_at < ?")
            params.append(_local_day_start(f.until + timedelta(days=1)))
        if f.overdue:
            where.append(self._overdue_sql())
            params.append(overdue_before)
        q = (f.q or "").strip()
        if q:
            digits = "".join(ch for ch in q if ch.isdigit())
            # instr() rather than LIKE: no pattern to escape, and a plain
            # substring scan is several times faster over 10,000 JSON texts.
            parts = ["instr(id, ?) > 0", "instr(fields, ?) > 0"]
            params.extend([q.upper(), q])
            if len(digits) >= 3:
                parts.append("instr(phone, ?) > 0")
                params.append(digits)
            where.append("(" + " OR ".join(parts) + ")")
        return (" WHERE " + " AND ".join(where)) if where else "", params

    @staticmethod
    def _overdue_sql() -> str:
        # `due_at` is the ticket's next deadline (flows/deadlines.py), indexed.
        return f"(status IN ({','.join(repr(s) for s in OPEN_STATUSES)}) AND due_at < ?)"

    def queue(
        self,
        f: TicketFilter,
        *,
        departments: frozenset[str] | None,
        overdue_before: datetime,
        order: str = "overdue",
        limit: int | None = 50,
        offset: int = 0,
        with_counts: bool = True,
    ) -> QueuePage:
        """One page of tickets matching `f`, within `departments` (None: all).
        `order`: "overdue" (overdue first, then oldest open first) or "newest";
        `with_counts`: also count each status (else `counts` is empty)."""
        cutoff = iso(overdue_before)
        where, params = self._where(f, departments, cutoff)
        overdue = self._overdue_sql()
        if order == "newest":
            order_sql = "created_at DESC, id DESC"
        else:
            order_sql = (
                f"CASE WHEN {overdue} THEN 0 WHEN status IN"
                f" ({','.join(repr(s) for s in OPEN_STATUSES)}) THEN 1 ELSE 2 END,"
                " created_at, id"
            )
        if with_counts:
            # One scan counts every status; the total follows from it.
            counts = self.status_counts(f, departments=departments, overdue_before=overdue_before)
            total = counts.get(f.status, 0) if f.status else sum(counts.values())
        else:
            counts = {}
            row = self.store._one(f"SELECT COUNT(*) AS n FROM tickets{where}", tuple(params))
            total = int(row["n"]) if row else 0
        # Sort and page on the id alone, then read the page's rows: the sorter
        # then moves short keys instead of whole tickets.
        sql = f"SELECT id, {overdue} AS is_overdue FROM tickets{where} ORDER BY {order_sql}"
        head: list[Any] = [cutoff]
        tail: list[Any] = [cutoff] if order != "newest" else []
        if limit is not None:
            sql += " LIMIT ? OFFSET ?"
            tail += [limit, offset]
        keys = self.store._rows(sql, (*head, *params, *tail))
        rows = self._tickets_by_id([k["id"] for k in keys])
        return QueuePage(
            tickets=rows,
            total=total,
            overdue_ids=frozenset(k["id"] for k in keys if k["is_overdue"]),
            counts=counts,
        )

    def _tickets_by_id(self, ids: list[str]) -> list[Ticket]:
        """Tickets in the order of `ids` (in chunks under SQLite's variable limit)."""
        found: dict[str, Ticket] = {}
        for i in range(0, len(ids), 500):
            chunk = ids[i : i + 500]
            for row in self.store._rows(
                f"SELECT * FROM tickets WHERE id IN ({','.join('?' * len(chunk))})", tuple(chunk)
            ):
                found[row["id"]] = _ticket_from_row(row)
        return [found[i] for i in ids if i in found]

    def status_counts(
        self, f: TicketFilter, *, departments: frozenset[str] | None, overdue_before: datetime
    ) -> dict[str, int]:
        """Counts per status of the tickets matching `f` with any status."""
        unfiltered = TicketFilter(**{**f.__dict__, "status": None})
        where, params = self._where(unfiltered, departments, iso(overdue_before))
        rows = self.store._rows(
            f"SELECT status, COUNT(*) AS n FROM tickets{where} GROUP BY status", tuple(params)
        )
        return {r["status"]: int(r["n"]) for r in rows}

    def is_overdue(self, ticket: Ticket, overdue_before: datetime) -> bool:
        """`overdue_before`: now (a ticket due before it is overdue)."""
        return (
            ticket.status in OPEN_STATUSES
            and ticket.due_at is not None
            and ticket.due_at < iso(overdue_before)
        )

    def assignees(self, departments: frozenset[str] | None) -> list[str]:
        where = ""
        params: tuple[Any, ...] = ()
        if departments is not None:
            where = f" AND department IN ({','.join('?' * len(departments))})"
            params = tuple(sorted(departments))
        rows = self.store._rows(
            f"SELECT DISTINCT assignee FROM tickets WHERE assignee IS NOT NULL{where}"
            " ORDER BY assignee",
            params,
        )
        return [r["assignee"] for r in rows]

    def stats(
        self, *, departments: frozenset[str] | None, overdue_before: datetime, f: Any = None
    ) -> dict[str, Any]:
        """The dashboard's figures (flows/stats.py) within `departments`."""
        chosen = f or StatsFilter()
        return compute_stats(
            self.store,
            StatsFilter(chosen.since, chosen.until, departments, chosen.department),
            now=overdue_before,
        )

    # -- conversation ---------------------------------------------------

    def messages(
        self, channel: str, user_id: str, *, after: int = 0, last: int = 200
    ) -> list[dict[str, Any]]:
        """A resident's message log (already masked when written), oldest first:
        the `last` messages, or those after the id `after`."""
        if after:
            return self.store._rows(
                "SELECT id, at, direction, text, intent FROM message_log"
                " WHERE channel = ? AND user_id = ? AND id > ? ORDER BY id LIMIT ?",
                (channel, user_id, after, last),
            )
        rows = self.store._rows(
            "SELECT id, at, direction, text, intent FROM message_log"
            " WHERE channel = ? AND user_id = ? ORDER BY id DESC LIMIT ?",
            (channel, user_id, last),
        )
        return rows[::-1]

    # -- volunteers -----------------------------------------------------

    def volunteers(
        self, *, team: str | None, since: date | None, until: date | None
    ) -> list[dict[str, Any]]:
        where: list[str] = []
        params: list[Any] = []
        if team:
            where.append("v.team = ?")
            params.append(team)
        if since:
            where.append("v.created_at >= ?")
            params.append(_local_day_start(since))
        if until:
            where.append("v.created_at < ?")
            params.append(_local_day_start(until + timedelta(days=1)))
        sql = (
            "SELECT v.*, c.contacted_by, c.contacted_at FROM volunteers v"
            " LEFT JOIN volunteer_contacts c ON c.volunteer_id = v.id"
        )
        if where:
            sql += " WHERE " + " AND ".join(where)
        return self.store._rows(sql + " ORDER BY v.created_at DESC, v.id DESC", tuple(params))

    def volunteer_teams(self) -> list[str]:
        rows = self.store._rows(
            "SELECT DISTINCT team FROM volunteers WHERE team IS NOT NULL ORDER BY team"
        )
        return [r["team"] for r in rows]

    def mark_contacted(self, volunteer_id: str, username: str) -> bool:
        """False when there is no such signup."""
        with self.store.transaction():
            if self.store._one("SELECT id FROM volunteers WHERE id = ?", (volunteer_id,)) is None:
                return False
            self.store._exec(
                "INSERT INTO volunteer_contacts(volunteer_id, contacted_by, contacted_at)"
                " VALUES (?, ?, ?) ON CONFLICT(volunteer_id) DO UPDATE SET"
                " contacted_by = excluded.contacted_by, contacted_at = excluded.contacted_at",
                (volunteer_id, username, iso(utcnow())),
            )
            return True

    def add_event(self, ticket_id: str, actor: str, action: str, note: str) -> None:
        """An audit event that moves nothing (a note, a reply, a takeover)."""
        self.store._add_event(ticket_id, actor, action, None, None, note, iso(utcnow()))
