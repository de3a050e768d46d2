"""The store contract on both backends (the `store` fixture: a real SQLite
file and a real PostgreSQL database), and the SQLite file's own guarantees."""

from __future__ import annotations

import json
import multiprocessing
import re
import sqlite3
import time
import types
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

import flows.store as store_module
from flows.store import (
    ALLOWED_TRANSITIONS,
    FORGOTTEN_USER_ID,
    LOCAL_TZ,
    MIGRATIONS,
    TICKET_STATUSES,
    IllegalTransitionError,
    SchemaTooNewError,
    Store,
    TicketNotFoundError,
)
from tests.pg_server import database_text

TICKET_ID = re.compile(r"^TX(\d{6})-(\d{4})$")


def new_ticket(store: Store, **overrides: Any) -> Any:
    args: dict[str, Any] = {
        "kind": "legal_aid",
        "department": "法律服务工作站",
        "channel": "shell",
        "user_id": "u1",
        "phone": "13912345678",
        "fields": {"name": "张三", "what": "老板拖欠工资三个月"},
    }
    args.update(overrides)
    ticket, created = store.create_ticket(**args)
    assert created
    return ticket


@pytest.fixture
def store(db_target: str | Path) -> Any:
    s = Store(db_target)
    yield s
    s.close()


def tables(path: Path) -> set[str]:
    with sqlite3.connect(path) as conn:
        return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}


# -- schema ---------------------------------------------------------------


def test_new_file_gets_current_schema_and_wal(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "dir" / "t.db"
    s = Store(path)
    assert s.schema_version() == len(MIGRATIONS)
    mode = s._one("PRAGMA journal_mode")["journal_mode"]
    s.close()
    assert mode == "wal"
    assert {"tickets", "ticket_events", "volunteers", "conversations", "outbox"} <= tables(path)


def test_database_at_version_zero_is_migrated_keeping_other_tables(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE notes(x TEXT)")
        conn.execute("INSERT INTO notes VALUES ('kept')")
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 0
    s = Store(path)
    assert s.schema_version() == len(MIGRATIONS)
    ticket = new_ticket(s)
    s.close()
    assert "tickets" in tables(path)
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT x FROM notes").fetchall() == [("kept",)]
    # Reopening does not run the migrations again.
    again = Store(path)
    assert again.get_ticket(ticket.id) == ticket
    again.close()


def test_database_from_the_future_is_refused_and_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "future.db"
    with sqlite3.connect(path) as conn:
        conn.execute(f"PRAGMA user_version={len(MIGRATIONS) + 5}")
    with pytest.raises(SchemaTooNewError, match=r"schema version \d+.*Upgrade tongxin"):
        Store(path)
    assert tables(path) == set()


def test_a_migration_step_may_fill_in_data_on_both_backends(
    db_target: str | Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    s = Store(db_target)
    ticket = new_ticket(s)
    s.close()

    def add_day(store: Store) -> None:
        store.run_ddl("ALTER TABLE tickets ADD COLUMN created_day TEXT")
        for row in store._rows("SELECT id, created_at FROM tickets"):
            store._exec(
                "UPDATE tickets SET created_day = ? WHERE id = ?",
                (row["created_at"][:10], row["id"]),
            )

    monkeypatch.setattr(store_module, "MIGRATIONS", (*MIGRATIONS, add_day))
    s = Store(db_target)
    assert s.schema_version() == len(MIGRATIONS) + 1
    assert s._one("SELECT created_day FROM tickets") == {"created_day": ticket.created_at[:10]}
    s.close()


def test_failed_migration_rolls_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    broken = ("CREATE TABLE half (x INTEGER)", "INSERT INTO no_such_table VALUES (1)")
    monkeypatch.setattr(store_module, "MIGRATIONS", (*MIGRATIONS, broken))
    path = tmp_path / "t.db"
    with pytest.raises(sqlite3.Error):
        Store(path)
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 0
    assert tables(path) == set()


# -- tickets --------------------------------------------------------------


def test_ticket_ids_are_readable_dated_and_sequential(store: Store) -> None:
    before = datetime.now(LOCAL_TZ).strftime("%y%m%d")
    ids = [new_ticket(store, user_id=f"u{i}").id for i in range(12)]
    after = datetime.now(LOCAL_TZ).strftime("%y%m%d")
    assert len(set(ids)) == 12
    for ticket_id in ids:
        match = TICKET_ID.match(ticket_id)
        assert match, ticket_id
        assert match.group(1) in (before, after)
    assert [int(i[-4:]) for i in ids] == list(range(1, 13))


def test_ticket_fields_round_trip_and_lookup_is_forgiving(store: Store) -> None:
    ticket = new_ticket(store, fields={"amount": 50000, "what": "开小吃店"}, kind="microloan")
    got = store.get_ticket(f"  {ticket.id.lower()} ")
    assert got == ticket
    assert got.fields == {"amount": 50000, "what": "开小吃店"}
    assert got.status == "open"
    assert got.created_at == got.updated_at
    with pytest.raises(TicketNotFoundError):
        store.get_ticket("TX000101-9999")


def test_dedupe_key_returns_the_same_ticket(store: Store) -> None:
    args: dict[str, Any] = {
        "kind": "report_issue",
        "department": "网格",
        "channel": "wechat",
        "user_id": "oX",
        "phone": None,
        "fields": {"what": "路灯坏了"},
    }
    first, created = store.create_ticket(**args, dedupe_key="wechat:oX:msg1")
    second, created_again = store.create_ticket(**args, dedupe_key="wechat:oX:msg1")
    other, created_other = store.create_ticket(**args, dedupe_key="wechat:oX:msg2")
    assert (created, created_again, created_other) == (True, False, True)
    assert second == first
    assert other.id != first.id
    assert len(store.list_tickets()) == 2


def test_list_tickets_filters(store: Store) -> None:
    a = new_ticket(store, kind="legal_aid", user_id="a")
    b = new_ticket(store, kind="microloan", user_id="b")
    store.change_ticket(b.id, actor="staff", status="in_progress")
    assert [t.id for t in store.list_tickets()] == [a.id, b.id]
    assert [t.id for t in store.list_tickets(kind="microloan")] == [b.id]
    assert [t.id for t in store.list_tickets(status="open")] == [a.id]
    assert [t.id for t in store.list_tickets(user_id="a", channel="shell")] == [a.id]
    assert store.list_tickets(channel="wechat") == []


@pytest.mark.parametrize("start", [s for s in TICKET_STATUSES])
def test_transitions_follow_the_table(tmp_path: Path, start: str) -> None:
    s = Store(tmp_path / "t.db")
    # Reach each start status by an allowed path.
    paths = {
        "open": [],
        "assigned": ["assigned"],
        "in_progress": ["in_progress"],
        "resolved": ["resolved"],
        "closed": ["resolved", "closed"],
        "cancelled": ["cancelled"],
    }
    for target in TICKET_STATUSES:
        ticket = new_ticket(s)
        for step in paths[start]:
            s.change_ticket(ticket.id, actor="t", status=step, assignee="王")
        assert s.get_ticket(ticket.id).status == start
        events_before = len(s.ticket_events(ticket.id))
        allowed = target in ALLOWED_TRANSITIONS[start]
        if allowed:
            moved = s.change_ticket(ticket.id, actor="t", status=target, notify_text="n")
            assert moved.status == target
            assert len(s.ticket_events(ticket.id)) == events_before + 1
        elif target == start and start != "assigned":
            continue  # same status is a note, not a move
        else:
            with pytest.raises(IllegalTransitionError):
                s.change_ticket(ticket.id, actor="t", status=target, notify_text="n")
            assert s.get_ticket(ticket.id).status == start
            assert len(s.ticket_events(ticket.id)) == events_before
    s.close()


def test_change_writes_event_and_outbox_in_one_go(store: Store) -> None:
    ticket = new_ticket(store)
    store.change_ticket(
        ticket.id, actor="王", status="assigned", assignee="李律师", notify_text="已接单"
    )
    store.change_ticket(ticket.id, actor="王", status="resolved", note="已解决", notify_text="办结")
    events = store.ticket_events(ticket.id)
    assert [(e.action, e.from_status, e.to_status) for e in events] == [
        ("created", None, "open"),
        ("assigned", "open", "assigned"),
        ("status", "assigned", "resolved"),
    ]
    assert events[1].note == "→ 李律师"
    assert events[2].note == "已解决"
    assert events[2].actor == "王"
    outbox = store.list_outbox(ticket_id=ticket.id)
    assert [(o.text, o.user_id, o.channel, o.status) for o in outbox] == [
        ("已接单", "u1", "shell", "pending"),
        ("办结", "u1", "shell", "pending"),
    ]
    final = store.get_ticket(ticket.id)
    assert final.assignee == "李律师"
    assert final.resolved_at is not None


def test_refused_change_writes_nothing(store: Store) -> None:
    ticket = new_ticket(store)
    with pytest.raises(IllegalTransitionError):
        store.change_ticket(ticket.id, actor="x", status="closed", notify_text="never")
    with pytest.raises(IllegalTransitionError, match="unknown status"):
        store.change_ticket(ticket.id, actor="x", status="done", notify_text="never")
    with pytest.raises(TicketNotFoundError):
        store.change_ticket("TX000101-0001", actor="x", status="resolved", notify_text="never")
    assert store.get_ticket(ticket.id) == ticket
    assert len(store.ticket_events(ticket.id)) == 1
    assert store.list_outbox() == []


def test_reopening_clears_resolved_at_and_stats_follow(store: Store) -> None:
    ticket = new_ticket(store)
    store.change_ticket(ticket.id, actor="x", status="resolved")
    assert store.stats().completed == 1
    reopened = store.change_ticket(ticket.id, actor="x", status="in_progress")
    assert reopened.resolved_at is None
    stats = store.stats()
    assert (stats.completed, stats.median_resolve_hours) == (0, None)


def test_stats_counts_rate_and_median(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [datetime(2026, 3, 1, 1, 0, tzinfo=LOCAL_TZ)]
    monkeypatch.setattr(store_module, "utcnow", lambda: clock[0])
    tickets = [new_ticket(store, kind=k) for k in ("legal_aid", "legal_aid", "microloan")]
    tickets.append(new_ticket(store, kind="report_issue"))
    # Resolved after 2 h, 4 h and 10 h; the last one is closed afterwards.
    for ticket, hours in zip(tickets[:3], (2, 4, 10), strict=True):
        clock[0] = datetime(2026, 3, 1, 1, 0, tzinfo=LOCAL_TZ) + timedelta(hours=hours)
        store.change_ticket(ticket.id, actor="x", status="resolved")
    store.change_ticket(tickets[2].id, actor="x", status="closed")
    stats = store.stats()
    assert stats.total == 4
    assert stats.completed == 3
    assert stats.completion_rate == pytest.approx(0.75)
    assert stats.median_resolve_hours == pytest.approx(4.0)
    assert stats.by_kind_status == {
        "legal_aid": {"resolved": 2},
        "microloan": {"closed": 1},
        "report_issue": {"open": 1},
    }


def test_empty_stats(store: Store) -> None:
    stats = store.stats()
    assert (stats.total, stats.completion_rate, stats.median_resolve_hours) == (0, None, None)


# -- volunteers, conversations -------------------------------------------


def test_volunteers_get_ids_and_dedupe(store: Store) -> None:
    args = {
        "name": "李四",
        "phone": "13800000000",
        "team": "家电维修",
        "skill": "修家电",
        "availability": "周末",
        "channel": "wechat",
        "user_id": "oA",
    }
    v1, c1 = store.add_volunteer(**args, dedupe_key="k")
    v2, c2 = store.add_volunteer(**args, dedupe_key="k")
    v3, c3 = store.add_volunteer(**{**args, "user_id": "oB"})
    assert (c1, c2, c3) == (True, False, True)
    assert v1 == v2
    assert re.match(r"^VT\d{6}-\d{4}$", v1.id)
    assert v3.id != v1.id
    assert [v.id for v in store.list_volunteers()] == [v1.id, v3.id]
    assert [v.id for v in store.list_volunteers(user_id="oB")] == [v3.id]


def test_conversation_state_is_json(store: Store) -> None:
    assert store.load_conversation("shell", "u1") is None
    state = {"form": "legal_aid", "slots": {"phone": "13912345678"}, "emoji": "🙂"}
    store.save_conversation("shell", "u1", state, 1)
    store.save_conversation("shell", "u1", {**state, "form": None}, 1)
    assert store.load_conversation("shell", "u1") == {**state, "form": None}
    raw = store._rows("SELECT state FROM conversations")
    assert [json.loads(r["state"])["emoji"] for r in raw] == ["🙂"]


# -- outbox ---------------------------------------------------------------


def test_outbox_due_retry_and_final_failure(store: Store) -> None:
    first = store.enqueue("wechat", "oA", "您好")
    second = store.enqueue("wechat", "oB", "再见")
    store.enqueue("telegram", "42", "hi")
    assert [o.id for o in store.due_outbox("wechat")] == [first, second]
    assert [o.id for o in store.due_outbox("wechat", limit=1)] == [first]

    # A temporary failure stays pending but waits; a retry in the past is due again.
    store.mark_outbox_failed(first, "errcode 45015 response out of time limit", retry_in_s=600)
    assert [o.id for o in store.due_outbox("wechat")] == [second]
    item = store.list_outbox(status="pending")[0]
    assert (item.id, item.attempts, item.last_error) == (
        first,
        1,
        "errcode 45015 response out of time limit",
    )
    store.mark_outbox_failed(first, "timeout", retry_in_s=-1)
    assert [o.id for o in store.due_outbox("wechat")] == [first, second]

    # A final failure leaves the queue and stays visible to staff.
    store.mark_outbox_failed(first, "errcode 45015 response out of time limit", retry_in_s=None)
    assert [o.id for o in store.due_outbox("wechat")] == [second]
    failed = store.list_outbox(status="failed")
    assert [(o.id, o.attempts, o.status) for o in failed] == [(first, 3, "failed")]
    assert failed[0].last_error == "errcode 45015 response out of time limit"

    store.mark_outbox_sent(second)
    sent = store.list_outbox(status="sent")
    assert [(o.id, o.attempts, o.last_error) for o in sent] == [(second, 1, None)]
    assert sent[0].sent_at is not None
    assert store.due_outbox("wechat") == []
    assert [o.text for o in store.due_outbox("telegram")] == ["hi"]


def test_take_outbox_for_user_delivers_once_and_only_theirs(store: Store) -> None:
    store.enqueue("shell", "u1", "第一条")
    store.enqueue("shell", "u2", "别人的")
    store.enqueue("wechat", "u1", "另一个渠道")
    store.enqueue("shell", "u1", "第二条")
    taken = store.take_outbox_for_user("shell", "u1")
    assert [o.text for o in taken] == ["第一条", "第二条"]
    assert store.take_outbox_for_user("shell", "u1") == []
    assert {o.text for o in store.list_outbox(status="sent")} == {"第一条", "第二条"}
    assert {o.text for o in store.list_outbox(status="pending")} == {"别人的", "另一个渠道"}


# -- kv, processed messages -----------------------------------------------


def test_kv_with_expiry(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    store.kv_set("wechat:token", "abc", ttl_s=7200)
    store.kv_set("forever", "x")
    assert store.kv_get("wechat:token") == "abc"
    assert store.kv_get("missing") is None
    later = time.time() + 7201
    monkeypatch.setattr(store_module, "time", types.SimpleNamespace(time=lambda: later))
    assert store.kv_get("wechat:token") is None
    assert store.kv_get("forever") == "x"
    store.kv_set("wechat:token", "def", ttl_s=7200)
    assert store.kv_get("wechat:token") == "def"
    store.kv_delete("wechat:token")
    assert store.kv_get("wechat:token") is None


def test_processed_messages(store: Store) -> None:
    assert store.processed_reply("wechat:1") is None
    store.record_processed("wechat:1", "好的", channel="wechat", user_id="o1")
    assert store.processed_reply("wechat:1") == "好的"
    store.record_processed("wechat:2", "王芳 13911112222", channel="wechat", user_id="o2")
    store.forget_user("o2")
    assert store.processed_reply("wechat:2") is None  # replies may hold personal data
    assert store.prune_processed(older_than_s=3600) == 0
    assert store.prune_processed(older_than_s=-1) == 1
    assert store.processed_reply("wechat:1") is None


# -- privacy --------------------------------------------------------------


def test_forget_user_keeps_anonymised_tickets_and_removes_personal_data(
    db_target: str | Path,
) -> None:
    s = Store(db_target)
    mine = new_ticket(s, user_id="u1", phone="13911112222", fields={"name": "王小明"})
    s.change_ticket(
        mine.id, actor="staff", status="resolved", note="已联系王小明", notify_text="办结"
    )
    other = new_ticket(s, user_id="u2", phone="13733334444", fields={"name": "赵六"})
    s.add_volunteer(
        name="王小明",
        phone="13911112222",
        team="宣讲",
        skill=None,
        availability=None,
        channel="shell",
        user_id="u1",
    )
    s.save_conversation("shell", "u1", {"slots": {"phone": "13911112222"}}, 1)
    s.log_message("shell", "u1", "in", "我叫王小明")
    s.set_subscribed("shell", "u1", True)
    stats_before = s.stats()

    assert s.user_data_counts("u1")["tickets_anonymised"] == 1
    counts = s.forget_user("u1")
    assert counts == {
        "tickets_anonymised": 1,
        "conversations": 1,
        "message_log": 1,
        "volunteers": 1,
        "outbox": 1,
        "channel_users": 1,
        "processed_messages": 0,
    }
    assert not any(s.user_data_counts("u1").values())

    kept = s.get_ticket(mine.id)
    assert (kept.kind, kept.status, kept.department, kept.created_at) == (
        mine.kind,
        "resolved",
        mine.department,
        mine.created_at,
    )
    assert kept.user_id == FORGOTTEN_USER_ID
    assert kept.phone is None
    assert kept.fields == {"anonymised": True}
    assert all(e.note is None for e in s.ticket_events(mine.id))
    assert s.ticket_events(mine.id)[-1].action == "anonymised"
    assert s.get_ticket(other.id) == other
    assert s.stats() == stats_before
    assert s.load_conversation("shell", "u1") is None
    assert s.list_volunteers() == []
    # The erased values are in no row of any table any more.
    text = database_text(s)
    for secret in ("13911112222", "王小明"):
        assert secret not in text
    assert "13733334444" in text
    s.checkpoint()
    s.close()

    if isinstance(db_target, Path):
        # Nor in any byte of the SQLite files (free pages, the WAL).
        folder = db_target.parent
        raw = b"".join(p.read_bytes() for p in folder.iterdir() if p.name.startswith("tongxin.db"))
        for secret in ("13911112222", "王小明"):
            assert secret.encode() not in raw
        assert b"13733334444" in raw


def test_forget_user_on_one_channel_only(store: Store) -> None:
    new_ticket(store, channel="shell", user_id="same")
    wechat = new_ticket(store, channel="wechat", user_id="same")
    counts = store.forget_user("same", channel="shell")
    assert counts["tickets_anonymised"] == 1
    assert store.get_ticket(wechat.id).user_id == "same"


def test_forget_user_covers_group_chat_state_and_no_lookalikes(store: Store) -> None:
    for key in ("u_1", "u_1@-100200", "u_10", "uX1@-100200", "uX1"):
        store.save_conversation("telegram", key, {"k": key}, 1)
        store.log_message("telegram", key, "in", "你好")
    assert store.user_data_counts("u_1")["conversations"] == 2
    counts = store.forget_user("u_1")
    assert (counts["conversations"], counts["message_log"]) == (2, 2)
    for key in ("u_10", "uX1@-100200", "uX1"):
        assert store.load_conversation("telegram", key) == {"k": key}
        assert len(store.message_log("telegram", key)) == 1
    assert store.load_conversation("telegram", "u_1@-100200") is None


# -- two processes --------------------------------------------------------


def _writer(path: str, worker: int, count: int, shared: int, start: Any, results: Any) -> None:
    start.wait(30)
    s = Store(path)
    ids = []
    for i in range(count):
        ticket, created = s.create_ticket(
            kind="report_issue",
            department="网格",
            channel="shell",
            user_id=f"w{worker}-{i}",
            phone=None,
            fields={"i": i, "worker": worker},
        )
        assert created
        ids.append(ticket.id)
        if i < shared:
            # Both writers submit the same confirmation: only one ticket may result.
            s.create_ticket(
                kind="legal_aid",
                department="法律服务工作站",
                channel="shell",
                user_id="both",
                phone=None,
                fields={"i": i},
                dedupe_key=f"shared-{i}",
            )
    s.close()
    results.put(ids)


def test_two_writer_processes_lose_nothing(db_target: str | Path, pg_server: Any) -> None:
    # SQLite: the file does not exist yet, both processes also race to create
    # the schema; PostgreSQL: an empty database, the same race.
    path = str(db_target) if isinstance(db_target, Path) else pg_server.empty_database()
    count, shared = 200, 50
    # fork: the worker is this module's function, which pytest's importlib mode
    # leaves unimportable by name in a spawned interpreter.
    ctx = multiprocessing.get_context("fork")
    start, results = ctx.Event(), ctx.Queue()
    workers = [
        ctx.Process(target=_writer, args=(path, w, count, shared, start, results)) for w in range(2)
    ]
    for proc in workers:
        proc.start()
    start.set()
    for proc in workers:
        proc.join(timeout=120)
    assert [proc.exitcode for proc in workers] == [0, 0]
    per_worker = [results.get(timeout=5) for _ in workers]

    s = Store(path)
    stored = s.list_tickets()
    ids = [t.id for t in stored]
    assert len(ids) == len(set(ids)) == 2 * count + shared
    assert {i for worker_ids in per_worker for i in worker_ids} <= set(ids)
    assert len(s.list_tickets(kind="report_issue")) == 2 * count
    assert len(s.list_tickets(kind="legal_aid")) == shared
    for w in range(2):
        fields = sorted(t.fields["i"] for t in stored if t.fields.get("worker") == w)
        assert fields == list(range(count))
    assert all(TICKET_ID.match(i) for i in ids)
    for ticket_id in ids:
        assert [e.action for e in s.ticket_events(ticket_id)] == ["created"]
    s.close()
