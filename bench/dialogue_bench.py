"""Dialogue core figures: one turn end to end (parse + flow + store), and
1,000 simulated users each completing a form, split over two processes on one
SQLite file, counting lost and duplicated tickets.

    .venv/bin/python bench/dialogue_bench.py [--users 1000] [--processes 2] [--script unclear]

`--script unclear` sends messages the bot cannot place (nlu_fallback, no FAQ
answer): the turns that also write to the review queue.
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import tempfile
import time
from pathlib import Path

from bot.app import build_core
from bot.settings import Settings
from flows.messages import IncomingMessage
from flows.paths import default_data_dir
from flows.store import Store

# One user's whole microloan pre-application: 7 turns, one ticket.
SCRIPT = [
    "我想申请红色信贷",
    "开了一家馕店",
    "五万",
    "进货",
    "我叫艾力",
    "13912345678",
    "确认",
]
# Idle turns the bot does not understand: each lands in the review queue.
UNCLEAR = [
    "那个东西到底怎么弄啊",
    "嗯嗯他们说找你",
    "上回那个事儿",
    "我家的问题咋办",
    "喂喂喂",
    "隔壁老王让我问问",
    "这个能不能行",
]
SCRIPTS = {"form": SCRIPT, "unclear": UNCLEAR}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def run_users(
    db: str,
    first: int,
    count: int,
    out: multiprocessing.Queue,  # type: ignore[type-arg]
    script: list[str] = SCRIPT,
) -> None:
    core = build_core(Settings(db_path=Path(db), data_dir=default_data_dir()))
    latencies: list[float] = []
    for step in range(len(script)):
        # Interleave users turn by turn, like real traffic.
        for n in range(first, first + count):
            msg = IncomingMessage(
                channel="bench", user_id=f"user{n}", text=script[step], message_id=f"{n}:{step}"
            )
            start = time.perf_counter()
            replies = core.dispatcher.handle(msg)
            latencies.append((time.perf_counter() - start) * 1000)
            assert replies
    core.close()
    out.put(latencies)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--script", choices=sorted(SCRIPTS), default="form")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        db = str(Path(tmp) / "bench.db")
        build_core(Settings(db_path=Path(db), data_dir=default_data_dir())).close()  # warm model
        queue: multiprocessing.Queue = multiprocessing.Queue()  # type: ignore[type-arg]
        per = args.users // args.processes
        started = time.perf_counter()
        procs = [
            multiprocessing.Process(
                target=run_users, args=(db, i * per, per, queue, SCRIPTS[args.script])
            )
            for i in range(args.processes)
        ]
        for p in procs:
            p.start()
        latencies: list[float] = []
        for _ in procs:
            latencies += queue.get()
        for p in procs:
            p.join()
        wall = time.perf_counter() - started
        store = Store(db)
        tickets = store.list_tickets(channel="bench")
        users = {t.user_id for t in tickets}
        expected = per * args.processes
        print(f"users: {expected} in {args.processes} processes, turns: {len(latencies)}")
        print(
            f"turn latency: median {statistics.median(latencies):.2f} ms, "
            f"p99 {percentile(latencies, 0.99):.2f} ms, max {max(latencies):.1f} ms"
        )
        print(f"throughput: {len(latencies) / wall:.0f} turns/s over {wall:.1f} s wall")
        if args.script != "form":
            expected = 0
        print(
            f"tickets: expected {expected}, created {len(tickets)}, "
            f"lost {expected - len(users)}, duplicated {len(tickets) - len(users)}"
        )
        store.close()


if __name__ == "__main__":
    main()
