"""Dashboard and stats over 100,000 tickets: server time (the app's own
Server-Timing) of the dashboard page with its six charts, of
`GET /staff/api/stats`, and of the figures alone (flows/stats.py), for all
desks over the last 30 and 90 days and for one department.

    .venv/bin/python bench/stats_bench.py [--tickets 100000] [--runs 15]

Target: each median <= 300 ms.
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from starlette.testclient import TestClient

from bot.app import build_core
from bot.settings import Settings
from bot.web import create_app
from bot.workspace.accounts import add_account, load_routing
from flows.paths import default_data_dir
from flows.stats import StatsFilter, compute_stats, local_today
from flows.store import LOCAL_TZ, Store, iso, utcnow
from flows.workspace_store import WorkspaceStore

STATUSES = ("open", "assigned", "in_progress", "resolved", "resolved", "closed", "cancelled")
ANSWERS = (None, None, "satisfied", "satisfied", "neutral", "unsatisfied")
INTENTS = ("legal_aid", "microloan", "report_issue", "faq", "ticket_status", "nlu_fallback")


def seed(store: Store, n: int, rng: random.Random) -> None:
    """`n` tickets over a year and 3 logged messages per ticket, in bulk."""
    routing = load_routing(default_data_dir())
    kinds = sorted(routing)
    now = utcnow()
    rows, log = [], []
    for i in range(n):
        kind = rng.choice(kinds)
        created = now - timedelta(seconds=rng.uniform(0, 365 * 86400))
        status = rng.choice(STATUSES)
        first = rng.uniform(0.2, 48) if status != "open" else None
        done = first + rng.uniform(1, 200) if first and status in ("resolved", "closed") else None
        answer = rng.choice(ANSWERS) if done else None
        due = created + timedelta(hours=rng.uniform(8, 240))
        stamp = iso(created)
        rows.append(
            (
                f"TX{i:07d}",
                kind,
                status,
                routing[kind],
                "wechat",
                f"u{i % 20000}",
                "{}",
                stamp,
                stamp,
                iso(created + timedelta(hours=done)) if done else None,
                created.astimezone(LOCAL_TZ).date().isoformat(),
                iso(due),
                int(first * 60) if first else None,
                int(done * 60) if done else None,
                answer,
            )
        )
        for _ in range(3):
            log.append((stamp, "wechat", f"u{i % 20000}", "in", "…", rng.choice(INTENTS)))
    with store.transaction():
        store._conn.executemany(
            "INSERT INTO tickets(id, kind, status, department, channel, user_id, fields,"
            " created_at, updated_at, resolved_at, created_day, due_at, first_response_minutes,"
            " resolve_minutes, satisfaction) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
        store._conn.executemany(
            "INSERT INTO message_log(at, channel, user_id, direction, text, intent)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            log,
        )
    store._conn.execute("ANALYZE")


def median_ms(samples: list[float]) -> str:
    return f"median {statistics.median(samples):7.1f} ms  (max {max(samples):.1f})"


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tickets", type=int, default=100_000)
    ap.add_argument("--runs", type=int, default=15)
    args = ap.parse_args()
    rng = random.Random(13)
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(
            db_path=Path(tmp) / "bench.db",
            data_dir=default_data_dir(),
            secret_key="bench-secret-key-0123456789",
        )
        core = build_core(settings, inline_outbox=frozenset())
        started = time.perf_counter()
        seed(core.store, args.tickets, rng)
        print(f"seeded {args.tickets} tickets in {time.perf_counter() - started:.1f} s")
        ws = WorkspaceStore(core.store)
        add_account(
            ws, "admin", "bench password 123", "admin", None, load_routing(settings.data_dir)
        )
        dept = load_routing(settings.data_dir)["report_issue"]
        today = local_today()
        with TestClient(create_app(core, []), base_url="http://testserver") as client:
            client.post(
                "/staff/login", data={"username": "admin", "password": "bench password 123"}
            )
            cases = [
                ("dashboard, 30 days", "/staff/dashboard", {}),
                ("dashboard, 90 days", "/staff/dashboard", {"days": "90"}),
                ("dashboard, one department", "/staff/dashboard", {"department": dept}),
                ("api/stats, all time", "/staff/api/stats", {}),
                ("api/stats, one department", "/staff/api/stats", {"department": dept}),
                ("monthly report page", "/staff/report", {}),
            ]
            for name, path, params in cases:
                samples = []
                for _ in range(args.runs):
                    res = client.get(path, params=params)
                    assert res.status_code == 200, res.text[:300]
                    timing = res.headers["server-timing"]
                    samples.append(float(timing.split("dur=")[1]))
                print(f"{name:28s} {median_ms(samples)}")
        for name, f in (
            ("figures only, all time", StatsFilter()),
            ("figures only, 30 days", StatsFilter(since=today - timedelta(days=29), until=today)),
        ):
            samples = []
            for _ in range(args.runs):
                t = time.perf_counter()
                compute_stats(core.store, f)
                samples.append((time.perf_counter() - t) * 1000)
            print(f"{name:28s} {median_ms(samples)}")
        core.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
