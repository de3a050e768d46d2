"""Staff workspace figures: server time (the app's own Server-Timing) of the
queue page over 10,000 tickets, filtered and searched, of the same query as
JSON, and of a ticket page with its conversation; plus how long a staff reply
takes to reach the resident's channel outbox.

    .venv/bin/python bench/workspace_bench.py [--tickets 10000] [--runs 200]

Targets: queue page median <= 50 ms, ticket page median <= 30 ms, reply in
the outbox within 1 s.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import time
from pathlib import Path

from starlette.testclient import TestClient

from bot.app import build_core
from bot.settings import Settings
from bot.web import create_app
from bot.workspace.accounts import add_account, load_routing
from flows.paths import default_data_dir
from flows.store import iso, utcnow
from flows.workspace_store import WorkspaceStore

KINDS = ("legal_aid", "microloan", "dispute_mediation", "report_issue", "human_handoff")
STATUSES = ("open", "open", "assigned", "in_progress", "resolved", "closed", "cancelled")
WORDS = ("拖欠工资", "押金不退", "楼上噪音", "路灯坏了", "消防通道", "小吃店贷款", "占道经营")
NAMES = ("王小明", "李四", "赵大妈", "陈先生", "艾力", "张阿姨", "刘师傅")
SEARCHES = ("工资", "王小明", "5678", "TX", "路灯", "赵大妈", "噪音")


def seed(core_store: object, n: int, rng: random.Random) -> list[str]:
    """`n` tickets over 90 days and 30 log lines for each 10th resident,
    written in bulk (the bench measures reading, not filing)."""
    from flows.store import Store

    store = core_store
    assert isinstance(store, Store)
    routing = load_routing(default_data_dir())
    now = utcnow().timestamp()
    ids = []
    with store.transaction():
        for i in range(n):
            kind = rng.choice(KINDS)
            created = iso(utcnow().fromtimestamp(now - rng.uniform(0, 90 * 86400), utcnow().tzinfo))
            status = rng.choice(STATUSES)
            tid = f"TX{i // 1000:06d}-{i % 1000:04d}"
            fields = {
                "description": f"{rng.choice(WORDS)}，第{i}号",
                "name": rng.choice(NAMES),
            }
            store._exec(
                "INSERT INTO tickets(id, kind, status, department, channel, user_id, phone,"
                " fields, assignee, created_at, updated_at, resolved_at)"
                " VALUES (?, ?, ?, ?, 'wechat', ?, ?, ?, NULL, ?, ?, ?)",
                (
                    tid,
                    kind,
                    status,
                    routing[kind],
                    f"oUser{i}",
                    f"139{rng.randrange(10**8):08d}",
                    json.dumps(fields, ensure_ascii=False),
                    created,
                    created,
                    created if status in ("resolved", "closed") else None,
                ),
            )
            store._add_event(tid, "user", "created", None, "open", None, created)
            ids.append(tid)
            if i % 10 == 0:
                for k in range(30):
                    store._exec(
                        "INSERT INTO message_log(at, channel, user_id, direction, text, intent)"
                        " VALUES (?, 'wechat', ?, ?, ?, NULL)",
                        (created, f"oUser{i}", "in" if k % 2 == 0 else "out", f"第{k}句话" * 5),
                    )
    return ids


def server_ms(client: TestClient, url: str) -> float:
    res = client.get(url)
    assert res.status_code == 200, (url, res.status_code)
    timing = res.headers["server-timing"]
    return float(timing.split("dur=")[1])


def summary(name: str, values: list[float], target: float | None) -> None:
    ordered = sorted(values)
    med = statistics.median(ordered)
    p95 = ordered[int(0.95 * (len(ordered) - 1))]
    verdict = (
        ""
        if target is None
        else f"  (target <= {target:g} ms: {'ok' if med <= target else 'MISSED'})"
    )
    print(f"{name:<46} median {med:6.2f} ms   p95 {p95:6.2f} ms{verdict}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tickets", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=200)
    args = parser.parse_args()
    rng = random.Random(12)
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(
            db_path=Path(tmp) / "bench.db", data_dir=default_data_dir(), secret_key="b" * 32
        )
        core = build_core(settings, inline_outbox=frozenset())
        start = time.perf_counter()
        ids = seed(core.store, args.tickets, rng)
        print(f"seeded {len(ids):,} tickets in {time.perf_counter() - start:.1f} s")
        ws = WorkspaceStore(core.store)
        add_account(ws, "admin", "bench password", "admin", None, load_routing(default_data_dir()))
        with TestClient(create_app(core, [])) as client:
            res = client.post(
                "/staff/login",
                data={"username": "admin", "password": "bench password"},
                follow_redirects=False,
            )
            assert res.status_code == 303
            csrf = client.get("/staff/api/session").json()["csrf_token"]
            queue, api, plain, page = [], [], [], []
            for r in range(args.runs):
                q = SEARCHES[r % len(SEARCHES)]
                kind = KINDS[r % len(KINDS)]
                plain.append(server_ms(client, "/staff/"))
                queue.append(server_ms(client, f"/staff/?status=open&kind={kind}&q={q}&page=1"))
                api.append(server_ms(client, f"/staff/api/tickets?status=open&q={q}&limit=50"))
                tid = ids[(r * 10) % len(ids)]  # a resident with 30 log lines
                page.append(server_ms(client, f"/staff/tickets/{tid}"))
            summary("queue page, no filter (page 1 of all)", plain, None)
            summary("queue page, status+kind filter + search", queue, 50)
            summary("GET /staff/api/tickets filter + search, 50", api, None)
            summary("ticket page (fields, trail, 30-line chat)", page, 30)
            delays = []
            for r in range(50):
                tid = ids[r]
                before = time.perf_counter()
                res = client.post(
                    f"/staff/api/tickets/{tid}/messages",
                    json={"text": f"您好，第{r}次回复", "internal": False},
                    headers={"X-CSRF-Token": csrf},
                )
                assert res.status_code == 201
                assert core.store.list_outbox(ticket_id=tid)
                delays.append((time.perf_counter() - before) * 1000)
            summary("staff reply -> resident's outbox (wall)", delays, 1000)
        core.close()


if __name__ == "__main__":
    main()
