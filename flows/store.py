"""The embedded SQLite store: tickets, their audit trail, volunteers, conversations,
the outbox, the message log, processed-message records and a small key/value cache.

sqlite-utils creates and migrates the schema; writes that belong together run in
one `BEGIN IMMEDIATE` transaction on a connection in autocommit mode, so that two
processes on the same file serialise their writes and lose nothing.
"""

from __future__ import annotations

import json
import os
import sqlite3
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import IO, Any

import sqlite_utils

if sys.platform != "win32":
    import fcntl
else:  # pragma: no cover - Windows has no flock(); SQLite's busy handler still serialises
    fcntl = None

# Ticket ids are read out on the phone, so they carry the local (China) date
# and a short daily sequence: TX261126-0042.
LOCAL_TZ = timezone(timedelta(hours=8))

TICKET_STATUSES: tuple[str, ...] = (
    "open",
    "assigned",
    "in_progress",
    "resolved",
    "closed",
    "cancelled",
)
# Forward moves may skip steps (a desk can resolve an open ticket at once);
# the only way back is reopening a resolved ticket.
ALLOWED_TRANSITIONS: dict[str, frozenset[str]] = {
    "open": frozenset({"assigned", "in_progress", "resolved", "cancelled"}),
    "assigned": frozenset({"assigned", "in_progress", "resolved", "cancelled"}),
    "in_progress": frozenset({"resolved", "cancelled"}),
    "resolved": frozenset({"closed", "in_progress"}),
    "closed": frozenset(),
    "cancelled": frozenset(),
}


# Tickets of a user who asked to be forgotten keep only this in `user_id`.
FORGOTTEN_USER_ID = "forgotten"

# Tables whose rows belong to one user and go entirely when they are forgotten.
_PERSONAL_TABLES: tuple[str, ...] = (
    "conversations",
    "message_log",
    "volunteers",
    "outbox",
    "channel_users",
    "processed_messages",
)


class StoreError(Exception):
    """Base class of the store's domain errors."""


class TicketNotFoundError(StoreError):
    pass


class IllegalTransitionError(StoreError):
    pass


class SchemaTooNewError(StoreError):
    pass


class TicketQuotaError(StoreError):
    """A user has filed as many tickets as the quota allows for now."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"ticket quota reached: {limit} per hour")
        self.limit = limit


class StoreFileGoneError(StoreError):
    """The database file was deleted or replaced while open: writes would land
    in a file nobody will read again."""


def utcnow() -> datetime:
    return datetime.now(UTC)


def iso(dt: datetime) -> str:
    return dt.astimezone(UTC).isoformat(timespec="microseconds")


def parse_iso(value: str) -> datetime:
    return datetime.fromisoformat(value)


@dataclass(frozen=True)
class Ticket:
    id: str
    kind: str
    status: str
    department: str
    channel: str
    user_id: str
    phone: str | None
    fields: dict[str, Any]
    assignee: str | None
    created_at: str
    updated_at: str
    resolved_at: str | None
    due_at: str | None = None
    first_response_at: str | None = None
    overdue_at: str | None = None  # when the one overdue reminder was recorded
    satisfaction: str | None = None  # satisfied, neutral, unsatisfied
    satisfaction_comment: str | None = None
    escalated_at: str | None = None  # a second unsatisfied answer went to an admin

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "status": self.status,
            "department": self.department,
            "channel": self.channel,
            "user_id": self.user_id,
            "phone": self.phone,
            "fields": self.fields,
            "assignee": self.assignee,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "resolved_at": self.resolved_at,
            "due_at": self.due_at,
            "first_response_at": self.first_response_at,
            "overdue_at": self.overdue_at,
            "satisfaction": self.satisfaction,
            "satisfaction_comment": self.satisfaction_comment,
            "escalated_at": self.escalated_at,
        }


@dataclass(frozen=True)
class TicketEvent:
    id: int
    ticket_id: str
    at: str
    actor: str
    action: str
    from_status: str | None
    to_status: str | None
    note: str | None


@dataclass(frozen=True)
class Volunteer:
    id: str
    name: str | None
    phone: str | None
    team: str | None
    skill: str | None
    availability: str | None
    channel: str
    user_id: str
    created_at: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "phone": self.phone,
            "team": self.team,
            "skill": self.skill,
            "availability": self.availability,
            "channel": self.channel,
            "user_id": self.user_id,
            "created_at": self.created_at,
        }


@dataclass(frozen=True)
class OutboxItem:
    id: int
    channel: str
    user_id: str
    chat_id: str | None
    text: str
    ticket_id: str | None
    status: str  # pending, sent, failed
    attempts: int
    next_attempt_at: str
    last_error: str | None
    created_at: str
    sent_at: str | None

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


@dataclass
class Stats:
    by_kind_status: dict[str, dict[str, int]] = field(default_factory=dict)
    total: int = 0
    completed: int = 0
    median_resolve_hours: float | None = None

    @property
    def completion_rate(self) -> float | None:
        return self.completed / self.total if self.total else None


def _ticket_from_row(row: dict[str, Any]) -> Ticket:
    return Ticket(
        id=row["id"],
        kind=row["kind"],
        status=row["status"],
        department=row["department"],
        channel=row["channel"],
        user_id=row["user_id"],
        phone=row["phone"],
        fields=json.loads(row["fields"] or "{}"),
        assignee=row["assignee"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        resolved_at=row["resolved_at"],
        due_at=row.get("due_at"),
        first_response_at=row.get("first_response_at"),
        overdue_at=row.get("overdue_at"),
        satisfaction=row.get("satisfaction"),
        satisfaction_comment=row.get("satisfaction_comment"),
        escalated_at=row.get("escalated_at"),
    )


def _volunteer_from_row(row: dict[str, Any]) -> Volunteer:
    return Volunteer(
        id=row["id"],
        name=row["name"],
        phone=row["phone"],
        team=row["team"],
        skill=row["skill"],
        availability=row["availability"],
        channel=row["channel"],
        user_id=row["user_id"],
        created_at=row["created_at"],
    )


def _outbox_from_row(row: dict[str, Any]) -> OutboxItem:
    return OutboxItem(**{k: row[k] for k in OutboxItem.__dataclass_fields__})


def _migrate_to_1(db: sqlite_utils.Database) -> None:
    db["tickets"].create(  # type: ignore[union-attr]
        {
            "id": str,
            "kind": str,
            "status": str,
            "department": str,
            "channel": str,
            "user_id": str,
            "phone": str,
            "fields": str,
            "assignee": str,
            "dedupe_key": str,
            "created_at": str,
            "updated_at": str,
            "resolved_at": str,
        },
        pk="id",
        not_null={"kind", "status", "department", "channel", "user_id", "created_at"},
    )
    db["tickets"].create_index(["dedupe_key"], unique=True)  # type: ignore[union-attr]
    db["tickets"].create_index(["channel", "user_id"])  # type: ignore[union-attr]
    db["tickets"].create_index(["status"])  # type: ignore[union-attr]
    db["ticket_events"].create(  # type: ignore[union-attr]
        {
            "id": int,
            "ticket_id": str,
            "at": str,
            "actor": str,
            "action": str,
            "from_status": str,
            "to_status": str,
            "note": str,
        },
        pk="id",
        foreign_keys=[("ticket_id", "tickets", "id")],
    )
    db["ticket_events"].create_index(["ticket_id"])  # type: ignore[union-attr]
    db["volunteers"].create(  # type: ignore[union-attr]
        {
            "id": str,
            "name": str,
            "phone": str,
            "team": str,
            "skill": str,
            "availability": str,
            "channel": str,
            "user_id": str,
            "dedupe_key": str,
            "created_at": str,
        },
        pk="id",
    )
    db["volunteers"].create_index(["dedupe_key"], unique=True)  # type: ignore[union-attr]
    db["conversations"].create(  # type: ignore[union-attr]
        {
            "channel": str,
            "user_id": str,
            "state": str,
            "state_version": int,
            "updated_at": str,
        },
        pk=("channel", "user_id"),
    )
    db["outbox"].create(  # type: ignore[union-attr]
        {
            "id": int,
            "channel": str,
            "user_id": str,
            "chat_id": str,
            "text": str,
            "ticket_id": str,
            "status": str,
            "attempts": int,
            "next_attempt_at": str,
            "last_error": str,
            "created_at": str,
            "sent_at": str,
        },
        pk="id",
        defaults={"status": "pending", "attempts": 0},
    )
    db["outbox"].create_index(["status", "channel", "next_attempt_at"])  # type: ignore[union-attr]
    db["outbox"].create_index(["channel", "user_id", "status"])  # type: ignore[union-attr]
    db["message_log"].create(  # type: ignore[union-attr]
        {
            "id": int,
            "at": str,
            "channel": str,
            "user_id": str,
            "direction": str,
            "text": str,
            "intent": str,
        },
        pk="id",
    )
    db["processed_messages"].create(  # type: ignore[union-attr]
        {
            "key": str,
            "channel": str,
            "user_id": str,
            "status": str,
            "reply": str,
            "created_at": str,
            "updated_at": str,
        },
        pk="key",
    )
    db["processed_messages"].create_index(["created_at"])  # type: ignore[union-attr]
    db["kv"].create({"key": str, "value": str, "expires_at": float}, pk="key")  # type: ignore[union-attr]
    db["sequences"].create({"name": str, "value": int}, pk="name")  # type: ignore[union-attr]
    db["channel_users"].create(  # type: ignore[union-attr]
        {"channel": str, "user_id": str, "subscribed": int, "updated_at": str},
        pk=("channel", "user_id"),
    )


def _migrate_to_2(db: sqlite_utils.Database) -> None:
    """The review queue (flows/review.py): one row per distinct masked message."""
    db.execute(
        "CREATE TABLE review_items ("
        " key TEXT PRIMARY KEY, kind TEXT NOT NULL, text TEXT NOT NULL,"
        " count INTEGER NOT NULL, first_seen TEXT NOT NULL, last_seen TEXT NOT NULL,"
        " guesses TEXT NOT NULL, status TEXT NOT NULL, label_kind TEXT, label TEXT,"
        " labelled_by TEXT, labelled_at TEXT)"
    )
    db.execute("CREATE INDEX ix_review_items_status ON review_items(status, count)")


def local_day(stamp: str) -> str:
    """The local (China) date of a stored UTC timestamp, as YYYY-MM-DD."""
    return parse_iso(stamp).astimezone(LOCAL_TZ).date().isoformat()


def minutes_between(start: str, end: str) -> int:
    """Whole minutes from `start` to `end`: the stored durations (integers, so
    that medians come from a GROUP BY histogram in any SQL database)."""
    return int((parse_iso(end) - parse_iso(start)).total_seconds() // 60)


# Deadlines, the satisfaction survey and the figures of the dashboard. The
# dashboard groups by local day and reads durations, so both are stored when a
# ticket changes rather than computed per query (plain SQL, for PostgreSQL too).
_V2_DDL: tuple[str, ...] = (
    "ALTER TABLE tickets ADD COLUMN created_day TEXT",
    "ALTER TABLE tickets ADD COLUMN due_at TEXT",
    "ALTER TABLE tickets ADD COLUMN first_response_at TEXT",
    "ALTER TABLE tickets ADD COLUMN first_response_minutes INTEGER",
    "ALTER TABLE tickets ADD COLUMN resolve_minutes INTEGER",
    "ALTER TABLE tickets ADD COLUMN overdue_at TEXT",
    "ALTER TABLE tickets ADD COLUMN satisfaction TEXT",
    "ALTER TABLE tickets ADD COLUMN satisfaction_comment TEXT",
    "ALTER TABLE tickets ADD COLUMN escalated_at TEXT",
    # Covering indexes: the dashboard's queries read these, never the wide rows.
    "CREATE INDEX ix_tickets_open_due ON tickets(status, department, due_at)",
    "CREATE INDEX ix_tickets_figures ON tickets(created_day, department, kind, status,"
    " satisfaction, resolve_minutes, first_response_minutes)",
    "CREATE INDEX ix_tickets_dept_figures ON tickets(department, created_day, kind, status,"
    " satisfaction, resolve_minutes, first_response_minutes)",
    "CREATE INDEX ix_tickets_escalated ON tickets(escalated_at)",
    "CREATE INDEX ix_message_log_topics ON message_log(at, direction, intent)",
    "CREATE TABLE surveys ("
    " ticket_id TEXT PRIMARY KEY, channel TEXT NOT NULL, user_id TEXT NOT NULL,"
    " status TEXT NOT NULL, asked_at TEXT, expires_at TEXT, answer TEXT, comment TEXT,"
    " unsatisfied_count INTEGER NOT NULL DEFAULT 0,"
    " created_at TEXT NOT NULL, updated_at TEXT NOT NULL)",
    "CREATE INDEX ix_surveys_user ON surveys(channel, user_id, status)",
)


def _migrate_to_3(db: sqlite_utils.Database) -> None:
    for statement in _V2_DDL:
        db.execute(statement)
    rows = db.execute("SELECT id, created_at, resolved_at FROM tickets").fetchall()
    for ticket_id, created_at, resolved_at in rows:
        minutes = minutes_between(created_at, resolved_at) if resolved_at else None
        db.execute(
            "UPDATE tickets SET created_day = ?, resolve_minutes = ? WHERE id = ?",
            (local_day(created_at), minutes, ticket_id),
        )


# Each step takes the schema from version i to i + 1. Add new steps at the end;
# never edit a released one.
MIGRATIONS: tuple[Callable[[sqlite_utils.Database], None], ...] = (
    _migrate_to_1,
    _migrate_to_2,
    _migrate_to_3,
)

# (kind, stage, start) -> due time, stage "respond" or "resolve"; flows/deadlines.py.
DueRule = Callable[[str, str, datetime], datetime | None]


def _create_private(path: Path) -> None:
    """A new database file is created 0600 (SQLite gives its WAL and shared
    memory files the same mode) and a new folder 0700: they hold personal data."""
    if not path.parent.exists():
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    os.close(fd)  # an empty file is an empty SQLite database


class Store:
    """One SQLite file. Safe to share between threads of one process (a lock
    serialises use of the single connection) and between processes (WAL and
    `BEGIN IMMEDIATE`)."""

    def __init__(
        self, path: str | Path, *, busy_timeout_s: float = 30.0, read_only: bool = False
    ) -> None:
        self.path = Path(path)
        if read_only:
            self._open_read_only(busy_timeout_s)
            return
        if str(path) != ":memory:":
            _create_private(self.path)
        conn = sqlite3.connect(
            str(path), timeout=busy_timeout_s, isolation_level=None, check_same_thread=False
        )
        conn.row_factory = sqlite3.Row
        self._conn = conn
        self._lock_file: IO[str] | None = None
        if fcntl is not None and str(path) != ":memory:":
            lock_path = self.path.with_name(self.path.name + ".lock")
            fd = os.open(lock_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            self._lock_file = open(fd, "a", encoding="utf-8")  # noqa: SIM115 - held for the store's lifetime
        self._lock = threading.RLock()
        self._depth = 0
        self.db = sqlite_utils.Database(conn)
        # Two processes opening a new file at once both switch it to WAL; SQLite
        # may answer one of them "locked" at once, so take turns here too.
        with self._writer_turn():
            conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA foreign_keys=ON")
        # Erased personal data must not linger in free pages of the file (PIPL);
        # some SQLite builds default to off.
        conn.execute("PRAGMA secure_delete=ON")
        self._identity = self._file_identity()
        self._checkpoint_after_commit = False
        self._ticket_quota: tuple[int, float, frozenset[str]] | None = None
        self._due_rule: DueRule | None = None
        self._migrate()

    def _open_read_only(self, busy_timeout_s: float) -> None:
        """For commands that only read: an existing file, no lock file, no
        migration (a read-only folder or file is fine)."""
        if not self.path.is_file():
            raise StoreError(f"no database file at {self.path}")
        uri = f"{self.path.resolve().as_uri()}?mode=ro"
        conn = sqlite3.connect(
            uri, uri=True, timeout=busy_timeout_s, isolation_level=None, check_same_thread=False
        )
        conn.row_factory = sqlite3.Row
        self._conn = conn
        self._lock_file = None
        self._lock = threading.RLock()
        self._depth = 0
        self.db = sqlite_utils.Database(conn)
        self._identity = self._file_identity()
        self._checkpoint_after_commit = False
        self._ticket_quota = None
        self._due_rule = None
        version = self.schema_version()  # reads the header: a damaged file fails here
        if version > len(MIGRATIONS):
            raise SchemaTooNewError(
                f"{self.path} has schema version {version}; this tongxin knows "
                f"up to {len(MIGRATIONS)}. Upgrade tongxin."
            )
        if version < len(MIGRATIONS):
            raise StoreError(f"{self.path} is not a tongxin database (or an older one)")

    # -- plumbing -------------------------------------------------------

    def close(self) -> None:
        with self._lock:
            self._conn.close()
            if self._lock_file is not None:
                self._lock_file.close()

    def checkpoint(self) -> None:
        """Copy the WAL into the main file and truncate it, so that old page
        images (e.g. of erased rows) leave the disk. Best effort while other
        connections read."""
        with self._lock:
            self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    # -- per-user ticket quota ---------------------------------------------

    def set_ticket_quota(
        self, limit: int, *, period_s: float = 3600.0, channels: frozenset[str]
    ) -> None:
        """At most `limit` tickets per user of `channels` in `period_s`; over it
        create_ticket raises TicketQuotaError (and its transaction rolls back)."""
        self._ticket_quota = (limit, period_s, channels)

    def set_due_rule(self, rule: DueRule | None) -> None:
        """How due times are computed (flows/deadlines.py); without one, new
        tickets get none until `fill_due_times` runs with a rule."""
        self._due_rule = rule

    def _due(self, kind: str, start: str, *, responded: bool) -> str | None:
        if self._due_rule is None:
            return None
        begin = parse_iso(start)
        due = None if responded else self._due_rule(kind, "respond", begin)
        if due is None:
            due = self._due_rule(kind, "resolve", begin)
        return iso(due) if due is not None else None

    def fill_due_times(self) -> int:
        """Give open tickets without a due time one (tickets made before
        deadlines existed, or by a process without the rule)."""
        if self._due_rule is None:
            return 0
        rows = self._rows(
            "SELECT id, kind, created_at, first_response_at FROM tickets WHERE due_at IS NULL "
            "AND status IN ('open', 'assigned', 'in_progress')"
        )
        filled = 0
        for r in rows:
            due = self._due(r["kind"], r["created_at"], responded=bool(r["first_response_at"]))
            if due is not None:
                self._exec(
                    "UPDATE tickets SET due_at = ? WHERE id = ? AND due_at IS NULL", (due, r["id"])
                )
                filled += 1
        return filled

    def mark_overdue(self, ticket_id: str, *, now: datetime, actor: str = "system") -> bool:
        """Record the ticket's one `overdue` event if it is open, past due and
        has none yet. The claim is a conditional UPDATE inside the event's
        transaction: of two processes racing, exactly one writes the event."""
        with self.transaction():
            stamp = iso(now)
            cur = self._exec(
                "UPDATE tickets SET overdue_at = ? WHERE id = ? AND overdue_at IS NULL "
                "AND due_at < ? AND status IN ('open', 'assigned', 'in_progress')",
                (stamp, ticket_id, stamp),
            )
            if cur.rowcount != 1:
                return False
            ticket = self.get_ticket(ticket_id)
            self._add_event(
                ticket.id, actor, "overdue", ticket.status, ticket.status, ticket.due_at, stamp
            )
            return True

    def _check_ticket_quota(self, channel: str, user_id: str, now: datetime) -> None:
        if self._ticket_quota is None:
            return
        limit, period_s, channels = self._ticket_quota
        if channel not in channels:
            return
        row = self._one(
            "SELECT COUNT(*) AS n FROM tickets WHERE channel = ? AND user_id = ? "
            "AND created_at > ?",
            (channel, user_id, iso(now - timedelta(seconds=period_s))),
        )
        if row is not None and int(row["n"]) >= limit:
            raise TicketQuotaError(limit)

    # -- file identity and health (tongxin serve's /healthz) ------------

    def _file_identity(self) -> tuple[int, int] | None:
        if str(self.path) == ":memory:":
            return None
        st = os.stat(self.path)
        return (st.st_dev, st.st_ino)

    def check_file(self) -> None:
        """Raise StoreFileGoneError when the file at `path` is no longer the
        one this store opened (deleted, or replaced by a copy or a restore)."""
        if self._identity is None:
            return
        try:
            now = self._file_identity()
        except FileNotFoundError:
            now = None
        if now != self._identity:
            raise StoreFileGoneError(
                f"{self.path} was deleted or replaced while tongxin had it open; "
                "nothing is saved until tongxin is restarted on the right file"
            )

    def probe_write(self) -> None:
        """A real write of about what a turn writes (a row needing fresh pages,
        deleted again in the same transaction): fails on a full disk or
        database, a read-only or a deleted file, like a turn's writes would."""
        with self.transaction():
            self._exec(
                "INSERT OR REPLACE INTO kv(key, value, expires_at) VALUES (?, ?, ?)",
                ("health:probe", "0" * 6000, time.time() + 60),
            )
            self._exec("DELETE FROM kv WHERE key = ?", ("health:probe",))

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """A write transaction; nested use joins the outer one."""
        with self._lock:
            if self._depth:
                self._depth += 1
                try:
                    yield
                finally:
                    self._depth -= 1
                return
            self.check_file()
            with self._writer_turn():
                self._conn.execute("BEGIN IMMEDIATE")
                self._depth = 1
                try:
                    yield
                except BaseException:
                    self._depth = 0
                    # SQLite has already rolled back after some errors (a full
                    # disk); a second ROLLBACK would hide the real error.
                    if self._conn.in_transaction:
                        self._conn.execute("ROLLBACK")
                    raise
                self._depth = 0
                self._conn.execute("COMMIT")
            if self._checkpoint_after_commit:
                self._checkpoint_after_commit = False
                self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    @contextmanager
    def _writer_turn(self) -> Iterator[None]:
        """Writers of all processes queue on a lock file before SQLite's own
        write lock. SQLite's busy handler polls with sleeps of up to 100 ms, which
        shows as a long tail when several server processes share the file; a
        blocked flock() wakes as soon as the holder lets go."""
        if self._lock_file is None:
            yield
            return
        fcntl.flock(self._lock_file.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(self._lock_file.fileno(), fcntl.LOCK_UN)

    def _exec(self, sql: str, params: tuple[Any, ...] | dict[str, Any] = ()) -> sqlite3.Cursor:
        with self._lock:
            if self._depth == 0 and not sql.lstrip()[:6].upper().startswith(("SELECT", "PRAGMA")):
                # A lone write is a transaction of its own, queued like the others.
                with self.transaction():
                    return self._conn.execute(sql, params)
            return self._conn.execute(sql, params)

    def _rows(self, sql: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(r) for r in self._conn.execute(sql, params).fetchall()]

    def _one(self, sql: str, params: tuple[Any, ...] = ()) -> dict[str, Any] | None:
        rows = self._rows(sql, params)
        return rows[0] if rows else None

    def schema_version(self) -> int:
        with self._lock:
            return int(self._conn.execute("PRAGMA user_version").fetchone()[0])

    def _migrate(self) -> None:
        with self.transaction():
            current = self.schema_version()
            if current > len(MIGRATIONS):
                raise SchemaTooNewError(
                    f"{self.path} has schema version {current}; this tongxin knows "
                    f"up to {len(MIGRATIONS)}. Upgrade tongxin."
                )
            for step in range(current, len(MIGRATIONS)):
                MIGRATIONS[step](self.db)
                self._conn.execute(f"PRAGMA user_version={step + 1}")

    # -- tickets --------------------------------------------------------

    def _next_daily_id(self, prefix: str, now: datetime) -> str:
        """`TX261126-0042`: a prefix, the local date and that day's sequence.
        Call inside a write transaction."""
        day = now.astimezone(LOCAL_TZ).strftime("%y%m%d")
        name = f"{prefix}:{day}"
        self._exec(
            "INSERT INTO sequences(name, value) VALUES (?, 1) "
            "ON CONFLICT(name) DO UPDATE SET value = value + 1",
            (name,),
        )
        row = self._one("SELECT value FROM sequences WHERE name = ?", (name,))
        assert row is not None
        return f"{prefix}{day}-{int(row['value']):04d}"

    def create_ticket(
        self,
        *,
        kind: str,
        department: str,
        channel: str,
        user_id: str,
        phone: str | None,
        fields: dict[str, Any],
        dedupe_key: str | None = None,
        actor: str = "user",
    ) -> tuple[Ticket, bool]:
        """Create a ticket; with a `dedupe_key` seen before, return the existing
        ticket instead. Returns (ticket, created)."""
        with self.transaction():
            if dedupe_key:
                row = self._one("SELECT * FROM tickets WHERE dedupe_key = ?", (dedupe_key,))
                if row:
                    return _ticket_from_row(row), False
            now = utcnow()
            if actor == "user":
                self._check_ticket_quota(channel, user_id, now)
            ticket_id = self._next_daily_id("TX", now)
            stamp = iso(now)
            self._exec(
                "INSERT INTO tickets(id, kind, status, department, channel, user_id, phone, "
                "fields, assignee, dedupe_key, created_at, updated_at, resolved_at, "
                "created_day, due_at) "
                "VALUES (?, ?, 'open', ?, ?, ?, ?, ?, NULL, ?, ?, ?, NULL, ?, ?)",
                (
                    ticket_id,
                    kind,
                    department,
                    channel,
                    user_id,
                    phone,
                    json.dumps(fields, ensure_ascii=False),
                    dedupe_key,
                    stamp,
                    stamp,
                    local_day(stamp),
                    self._due(kind, stamp, responded=False),
                ),
            )
            self._add_event(ticket_id, actor, "created", None, "open", None, stamp)
            row = self._one("SELECT * FROM tickets WHERE id = ?", (ticket_id,))
            assert row is not None
            return _ticket_from_row(row), True

    def _add_event(
        self,
        ticket_id: str,
        actor: str,
        action: str,
        from_status: str | None,
        to_status: str | None,
        note: str | None,
        at: str,
    ) -> None:
        self._exec(
            "INSERT INTO ticket_events(ticket_id, at, actor, action, from_status, to_status, note)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (ticket_id, at, actor, action, from_status, to_status, note),
        )

    def get_ticket(self, ticket_id: str) -> Ticket:
        row = self._one("SELECT * FROM tickets WHERE id = ?", (ticket_id.strip().upper(),))
        if row is None:
            raise TicketNotFoundError(f"no ticket {ticket_id}")
        return _ticket_from_row(row)

    def list_tickets(
        self,
        *,
        status: str | None = None,
        kind: str | None = None,
        channel: str | None = None,
        user_id: str | None = None,
    ) -> list[Ticket]:
        where, params = [], []
        for column, value in (
            ("status", status),
            ("kind", kind),
            ("channel", channel),
            ("user_id", user_id),
        ):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        sql = "SELECT * FROM tickets"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY created_at, id"
        return [_ticket_from_row(r) for r in self._rows(sql, tuple(params))]

    def ticket_events(self, ticket_id: str) -> list[TicketEvent]:
        rows = self._rows(
            "SELECT * FROM ticket_events WHERE ticket_id = ? ORDER BY id",
            (ticket_id.strip().upper(),),
        )
        return [TicketEvent(**r) for r in rows]

    def events_after(
        self, event_id: int, *, action: str | None = None, limit: int = 100
    ) -> list[TicketEvent]:
        """Events of every ticket with an id above `event_id`, oldest first: a
        cursor for feeds such as the Telegram staff chat (keep the last id seen)."""
        sql = "SELECT * FROM ticket_events WHERE id > ?"
        params: tuple[Any, ...] = (event_id,)
        if action is not None:
            sql += " AND action = ?"
            params += (action,)
        rows = self._rows(sql + " ORDER BY id LIMIT ?", (*params, limit))
        return [TicketEvent(**r) for r in rows]

    def events_with_actions_after(
        self, event_id: int, actions: Sequence[str], *, limit: int = 100
    ) -> list[TicketEvent]:
        """Like `events_after`, for several actions at once (staff notices:
        created, overdue, handoff)."""
        if not actions:
            return []
        marks = ", ".join("?" * len(actions))
        rows = self._rows(
            f"SELECT * FROM ticket_events WHERE id > ? AND action IN ({marks}) ORDER BY id LIMIT ?",
            (event_id, *actions, limit),
        )
        return [TicketEvent(**r) for r in rows]

    def add_ticket_event(
        self, ticket_id: str, *, actor: str, action: str, note: str | None = None
    ) -> None:
        """An audit event that moves nothing (a resident asking again for a person)."""
        self._add_event(ticket_id.strip().upper(), actor, action, None, None, note, iso(utcnow()))

    def last_event_id(self) -> int:
        """The id of the newest ticket event (0 when there is none)."""
        row = self._one("SELECT COALESCE(MAX(id), 0) AS n FROM ticket_events")
        return int(row["n"]) if row else 0

    def change_ticket(
        self,
        ticket_id: str,
        *,
        actor: str,
        status: str | None = None,
        assignee: str | None = None,
        note: str | None = None,
        notify_text: str | None = None,
    ) -> Ticket:
        """Move a ticket (status and/or assignee), write the event and queue
        `notify_text` to the ticket's user, all in one transaction."""
        if status is not None and status not in TICKET_STATUSES:
            raise IllegalTransitionError(
                f"unknown status {status!r}; one of: {', '.join(TICKET_STATUSES)}"
            )
        with self.transaction():
            ticket = self.get_ticket(ticket_id)
            new_status = status or ticket.status
            moving = status is not None and (status != ticket.status or status == "assigned")
            if moving and new_status not in ALLOWED_TRANSITIONS[ticket.status]:
                raise IllegalTransitionError(
                    f"ticket {ticket.id} is {ticket.status}; it cannot become {new_status}"
                )
            stamp = iso(utcnow())
            resolved_at = ticket.resolved_at
            due_at = ticket.due_at
            if new_status == "resolved":
                resolved_at = stamp
            elif new_status == "in_progress" and ticket.status == "resolved":
                resolved_at = None
                # Reopened: the desk has the kind's time to resolve it again.
                due_at = self._due(ticket.kind, stamp, responded=True) or due_at
            self._exec(
                "UPDATE tickets SET status = ?, assignee = ?, updated_at = ?, resolved_at = ?, "
                "resolve_minutes = ?, due_at = ? WHERE id = ?",
                (
                    new_status,
                    assignee or ticket.assignee,
                    stamp,
                    resolved_at,
                    minutes_between(ticket.created_at, resolved_at) if resolved_at else None,
                    due_at,
                    ticket.id,
                ),
            )
            if actor != "user":
                self.record_first_response(ticket.id, stamp)
            action = "assigned" if assignee else ("status" if status else "note")
            full_note = note
            if assignee:
                full_note = f"→ {assignee}" + (f": {note}" if note else "")
            self._add_event(ticket.id, actor, action, ticket.status, new_status, full_note, stamp)
            if notify_text:
                self.enqueue(ticket.channel, ticket.user_id, notify_text, ticket_id=ticket.id)
            return self.get_ticket(ticket.id)

    def record_first_response(self, ticket_id: str, stamp: str) -> None:
        """The first time staff act on a ticket (a reply, a move): its time to
        first response, and from then on its due time is the one to resolve."""
        ticket = self.get_ticket(ticket_id)
        if ticket.first_response_at is not None:
            return
        due = self._due(ticket.kind, ticket.created_at, responded=True) or ticket.due_at
        self._exec(
            "UPDATE tickets SET first_response_at = ?, first_response_minutes = ?, due_at = ? "
            "WHERE id = ? AND first_response_at IS NULL",
            (stamp, minutes_between(ticket.created_at, stamp), due, ticket.id),
        )

    def stats(self) -> Stats:
        stats = Stats()
        for row in self._rows("SELECT kind, status, COUNT(*) AS n FROM tickets GROUP BY 1, 2"):
            stats.by_kind_status.setdefault(row["kind"], {})[row["status"]] = row["n"]
            stats.total += row["n"]
            if row["status"] in ("resolved", "closed"):
                stats.completed += row["n"]
        hours = sorted(
            (parse_iso(r["resolved_at"]) - parse_iso(r["created_at"])).total_seconds() / 3600
            for r in self._rows(
                "SELECT created_at, resolved_at FROM tickets WHERE resolved_at IS NOT NULL"
            )
        )
        if hours:
            mid = len(hours) // 2
            stats.median_resolve_hours = (
                hours[mid] if len(hours) % 2 else (hours[mid - 1] + hours[mid]) / 2
            )
        return stats

    # -- volunteers -----------------------------------------------------

    def add_volunteer(
        self,
        *,
        name: str | None,
        phone: str | None,
        team: str | None,
        skill: str | None,
        availability: str | None,
        channel: str,
        user_id: str,
        dedupe_key: str | None = None,
    ) -> tuple[Volunteer, bool]:
        with self.transaction():
            if dedupe_key:
                row = self._one("SELECT * FROM volunteers WHERE dedupe_key = ?", (dedupe_key,))
                if row:
                    return _volunteer_from_row(row), False
            now = utcnow()
            vid = self._next_daily_id("VT", now)
            self._exec(
                "INSERT INTO volunteers(id, name, phone, team, skill, availability, channel, "
                "user_id, dedupe_key, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    vid,
                    name,
                    phone,
                    team,
                    skill,
                    availability,
                    channel,
                    user_id,
                    dedupe_key,
                    iso(now),
                ),
            )
            row = self._one("SELECT * FROM volunteers WHERE id = ?", (vid,))
            assert row is not None
            return _volunteer_from_row(row), True

    def list_volunteers(self, *, user_id: str | None = None) -> list[Volunteer]:
        if user_id is None:
            rows = self._rows("SELECT * FROM volunteers ORDER BY created_at, id")
        else:
            rows = self._rows(
                "SELECT * FROM volunteers WHERE user_id = ? ORDER BY created_at, id", (user_id,)
            )
        return [_volunteer_from_row(r) for r in rows]

    # -- conversations --------------------------------------------------

    def load_conversation(self, channel: str, user_id: str) -> dict[str, Any] | None:
        row = self._one(
            "SELECT state FROM conversations WHERE channel = ? AND user_id = ?",
            (channel, user_id),
        )
        if row is None:
            return None
        state: dict[str, Any] = json.loads(row["state"])
        return state

    def save_conversation(
        self, channel: str, user_id: str, state: dict[str, Any], state_version: int
    ) -> None:
        self._exec(
            "INSERT INTO conversations(channel, user_id, state, state_version, updated_at) "
            "VALUES (?, ?, ?, ?, ?) ON CONFLICT(channel, user_id) DO UPDATE SET "
            "state = excluded.state, state_version = excluded.state_version, "
            "updated_at = excluded.updated_at",
            (channel, user_id, json.dumps(state, ensure_ascii=False), state_version, iso(utcnow())),
        )

    # -- outbox ---------------------------------------------------------

    def enqueue(
        self,
        channel: str,
        user_id: str,
        text: str,
        *,
        ticket_id: str | None = None,
        chat_id: str | None = None,
    ) -> int:
        now = iso(utcnow())
        cur = self._exec(
            "INSERT INTO outbox(channel, user_id, chat_id, text, ticket_id, status, attempts, "
            "next_attempt_at, created_at) VALUES (?, ?, ?, ?, ?, 'pending', 0, ?, ?)",
            (channel, user_id, chat_id, text, ticket_id, now, now),
        )
        return int(cur.lastrowid or 0)

    def due_outbox(self, channel: str, *, limit: int = 50) -> list[OutboxItem]:
        rows = self._rows(
            "SELECT * FROM outbox WHERE channel = ? AND status = 'pending' "
            "AND next_attempt_at <= ? ORDER BY id LIMIT ?",
            (channel, iso(utcnow()), limit),
        )
        return [_outbox_from_row(r) for r in rows]

    def take_outbox_for_user(self, channel: str, user_id: str) -> list[OutboxItem]:
        """Pending messages for a user of a channel that delivers in-line (the
        shell), marked sent in the same transaction."""
        with self.transaction():
            rows = self._rows(
                "SELECT * FROM outbox WHERE channel = ? AND user_id = ? AND status = 'pending' "
                "ORDER BY id",
                (channel, user_id),
            )
            if rows:
                self._exec(
                    "UPDATE outbox SET status = 'sent', sent_at = ?, attempts = attempts + 1 "
                    f"WHERE id IN ({','.join('?' * len(rows))})",
                    (iso(utcnow()), *[r["id"] for r in rows]),
                )
        return [_outbox_from_row(r) for r in rows]

    def mark_outbox_sent(self, item_id: int) -> None:
        self._exec(
            "UPDATE outbox SET status = 'sent', sent_at = ?, attempts = attempts + 1, "
            "last_error = NULL WHERE id = ?",
            (iso(utcnow()), item_id),
        )

    def mark_outbox_failed(self, item_id: int, error: str, *, retry_in_s: float | None) -> None:
        """Record a failed attempt. With `retry_in_s` the row stays pending and is
        retried later; without it the failure is final and stays visible to staff."""
        if retry_in_s is None:
            self._exec(
                "UPDATE outbox SET status = 'failed', last_error = ?, attempts = attempts + 1 "
                "WHERE id = ?",
                (error, item_id),
            )
        else:
            later = iso(utcnow() + timedelta(seconds=retry_in_s))
            self._exec(
                "UPDATE outbox SET last_error = ?, attempts = attempts + 1, next_attempt_at = ? "
                "WHERE id = ?",
                (error, later, item_id),
            )

    def list_outbox(
        self, *, status: str | None = None, ticket_id: str | None = None
    ) -> list[OutboxItem]:
        where, params = [], []
        for column, value in (("status", status), ("ticket_id", ticket_id)):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        sql = "SELECT * FROM outbox" + (" WHERE " + " AND ".join(where) if where else "")
        rows = self._rows(sql + " ORDER BY id", tuple(params))
        return [_outbox_from_row(r) for r in rows]

    # -- message log ----------------------------------------------------

    def log_message(
        self, channel: str, user_id: str, direction: str, text: str, intent: str | None = None
    ) -> None:
        """`text` must already be masked by the caller."""
        self._exec(
            "INSERT INTO message_log(at, channel, user_id, direction, text, intent) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (iso(utcnow()), channel, user_id, direction, text, intent),
        )

    def last_message_at(self, channel: str, user_id: str, *, direction: str = "in") -> str | None:
        """When the newest logged message of a user went in (or out); None if none."""
        row = self._one(
            "SELECT MAX(at) AS at FROM message_log WHERE channel = ? AND user_id = ? "
            "AND direction = ?",
            (channel, user_id, direction),
        )
        return None if row is None or row["at"] is None else str(row["at"])

    def message_log(self, channel: str, user_id: str) -> list[dict[str, Any]]:
        return self._rows(
            "SELECT * FROM message_log WHERE channel = ? AND user_id = ? ORDER BY id",
            (channel, user_id),
        )

    # -- processed messages (platform retries) --------------------------

    def processed_reply(self, key: str) -> str | None:
        """The stored reply of a platform message already handled, if any. Call
        inside the transaction that would handle it, so that a concurrent retry
        waits for the first delivery to commit and then sees its reply."""
        row = self._one("SELECT reply FROM processed_messages WHERE key = ?", (key,))
        return None if row is None else str(row["reply"])

    def record_processed(self, key: str, reply: str, *, channel: str, user_id: str) -> None:
        """Keep a handled platform message's reply (it may hold a form summary,
        so it is tied to the user for `forget_user` and pruned after a day)."""
        now = iso(utcnow())
        self._exec(
            "INSERT INTO processed_messages(key, channel, user_id, status, reply, created_at, "
            "updated_at) VALUES (?, ?, ?, 'done', ?, ?, ?) ON CONFLICT(key) DO UPDATE SET "
            "reply = excluded.reply, updated_at = excluded.updated_at",
            (key, channel, user_id, reply, now, now),
        )

    def prune_processed(self, *, older_than_s: float) -> int:
        cutoff = iso(utcnow() - timedelta(seconds=older_than_s))
        cur = self._exec("DELETE FROM processed_messages WHERE created_at < ?", (cutoff,))
        return int(cur.rowcount)

    # -- key/value cache (shared access tokens) -------------------------

    def kv_get(self, key: str) -> str | None:
        row = self._one("SELECT value, expires_at FROM kv WHERE key = ?", (key,))
        if row is None:
            return None
        if row["expires_at"] is not None and row["expires_at"] <= time.time():
            return None
        return str(row["value"])

    def kv_set(self, key: str, value: str, *, ttl_s: float | None = None) -> None:
        expires = time.time() + ttl_s if ttl_s is not None else None
        self._exec(
            "INSERT INTO kv(key, value, expires_at) VALUES (?, ?, ?) ON CONFLICT(key) DO UPDATE "
            "SET value = excluded.value, expires_at = excluded.expires_at",
            (key, value, expires),
        )

    def kv_delete(self, key: str) -> None:
        self._exec("DELETE FROM kv WHERE key = ?", (key,))

    def kv_items(self, prefix: str) -> list[tuple[str, str]]:
        """Unexpired (key, value) rows whose key starts with `prefix`."""
        rows = self._rows(
            "SELECT key, value FROM kv WHERE substr(key, 1, ?) = ? "
            "AND (expires_at IS NULL OR expires_at > ?) ORDER BY key",
            (len(prefix), prefix, time.time()),
        )
        return [(str(r["key"]), str(r["value"])) for r in rows]

    def purge_expired_kv(self) -> int:
        """Delete expired key/value rows (markers, leases, deep links)."""
        cur = self._exec(
            "DELETE FROM kv WHERE expires_at IS NOT NULL AND expires_at <= ?", (time.time(),)
        )
        return int(cur.rowcount)

    # -- channel users --------------------------------------------------

    def set_subscribed(self, channel: str, user_id: str, subscribed: bool) -> None:
        self._exec(
            "INSERT INTO channel_users(channel, user_id, subscribed, updated_at) VALUES "
            "(?, ?, ?, ?) ON CONFLICT(channel, user_id) DO UPDATE SET "
            "subscribed = excluded.subscribed, updated_at = excluded.updated_at",
            (channel, user_id, int(subscribed), iso(utcnow())),
        )

    def is_subscribed(self, channel: str, user_id: str) -> bool | None:
        row = self._one(
            "SELECT subscribed FROM channel_users WHERE channel = ? AND user_id = ?",
            (channel, user_id),
        )
        return None if row is None else bool(row["subscribed"])

    # -- privacy --------------------------------------------------------

    @staticmethod
    def _user_filter(user_id: str, channel: str | None) -> tuple[str, tuple[str, ...]]:
        """SQL matching a user's rows: their own id and the `user@chat` keys the
        dispatcher gives their state inside group chats (no LIKE, so `%` and `_`
        in ids stay literal)."""
        sql = "(user_id = ? OR substr(user_id, 1, ?) = ?)"
        params: tuple[Any, ...] = (user_id, len(user_id) + 1, f"{user_id}@")
        if channel is not None:
            sql += " AND channel = ?"
            params += (channel,)
        return sql, params

    def user_data_counts(self, user_id: str, *, channel: str | None = None) -> dict[str, int]:
        """What `forget_user` would touch, with the same keys; changes nothing."""
        where, params = self._user_filter(user_id, channel)
        counts = {}
        for key, table in (("tickets_anonymised", "tickets"), *((t, t) for t in _PERSONAL_TABLES)):
            row = self._one(f"SELECT COUNT(*) AS n FROM {table} WHERE {where}", params)
            counts[key] = int(row["n"]) if row else 0
        return counts

    def forget_user(self, user_id: str, *, channel: str | None = None) -> dict[str, int]:
        """Erase a user's personal data (PIPL): conversations, message log,
        volunteer signups and outbox rows go (also those of the user's group-chat
        state); tickets stay for statistics with the user, phone and free-text
        fields removed."""
        counts: dict[str, int] = {}
        where, params = self._user_filter(user_id, channel)
        with self.transaction():
            tickets = self._rows(f"SELECT id, fields FROM tickets WHERE {where}", params)
            stamp = iso(utcnow())
            for t in tickets:
                kept = {"anonymised": True}
                self._exec(
                    "UPDATE tickets SET user_id = ?, phone = NULL, fields = ?, "
                    "dedupe_key = NULL, updated_at = ? WHERE id = ?",
                    (FORGOTTEN_USER_ID, json.dumps(kept), stamp, t["id"]),
                )
                self._exec("UPDATE ticket_events SET note = NULL WHERE ticket_id = ?", (t["id"],))
                self._add_event(t["id"], "privacy", "anonymised", None, None, None, stamp)
            counts["tickets_anonymised"] = len(tickets)
            for table in _PERSONAL_TABLES:
                cur = self._exec(f"DELETE FROM {table} WHERE {where}", params)
                counts[table] = int(cur.rowcount)
            self._forget_user_kv(user_id)
            # The erased rows' old page images stay in the WAL until a
            # checkpoint: run one as soon as this transaction commits.
            self._checkpoint_after_commit = True
        return counts

    def _forget_user_kv(self, user_id: str) -> int:
        """Key/value rows that carry the user's words (deep-link records with
        group text, late WeChat turns): their JSON value names the user."""
        cur = self._exec(
            "DELETE FROM kv WHERE json_valid(value) AND json_type(value) = 'object' AND ("
            "json_extract(value, '$.user_id') = ? "
            "OR substr(json_extract(value, '$.user_id'), 1, ?) = ?)",
            (user_id, len(user_id) + 1, f"{user_id}@"),
        )
        return int(cur.rowcount)
