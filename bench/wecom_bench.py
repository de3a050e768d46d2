"""WeCom staff notices under a burst of new tickets: N tickets created evenly
over a minute, posted through the real `StaffNoticeService` to a local server
that answers like WeCom's webhook and enforces its 20-messages-a-minute limit
with 45009. Prints posts made, the most in any 60 s, tickets lost or repeated,
and how long a ticket waited for its post.

    .venv/bin/python bench/wecom_bench.py            # 100 tickets, the real minute
    .venv/bin/python bench/wecom_bench.py --tickets 300 --window 10
"""

from __future__ import annotations

import argparse
import asyncio
import re
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bot.staff_notify.service import StaffNoticeService  # noqa: E402
from bot.staff_notify.wecom import PostWindow, WeComNotifier  # noqa: E402
from flows.paths import default_data_dir  # noqa: E402
from flows.replies import Replies  # noqa: E402
from flows.store import Store  # noqa: E402
from tests.bot.staff_notify.fake_wecom import FakeWeCom  # noqa: E402

TICKET_ID = re.compile(r"TX\d{6}-\d{4}")


async def run(tickets: int, window_s: float) -> None:
    fake = FakeWeCom(window_s=window_s).start()
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "bench.db")
        notifier = WeComNotifier(
            fake.url,
            Replies.load(default_data_dir() / "replies"),
            window=PostWindow(window_s=window_s),
        )
        svc = StaffNoticeService(store, notifier)
        await svc.start()
        created_at: dict[str, float] = {}
        start = time.monotonic()
        for n in range(tickets):
            ticket, _ = await asyncio.to_thread(
                store.create_ticket,
                kind="report_issue",
                department="城管科",
                channel="wechat",
                user_id=f"oBench{n}",
                phone=None,
                fields={"description": f"第{n}号：路灯不亮"},
            )
            created_at[ticket.id] = time.monotonic()
            await asyncio.sleep(max(0.0, start + (n + 1) * window_s / tickets - time.monotonic()))
        deadline = time.monotonic() + 3 * window_s
        while time.monotonic() < deadline:
            seen = {i for c in fake.contents() for i in TICKET_ID.findall(c)}
            if len(seen) >= tickets:
                break
            await asyncio.sleep(0.1)
        await asyncio.sleep(1.0)
        await svc.stop()
        store.close()
    fake.stop()
    counts: Counter[str] = Counter(i for c in fake.contents() for i in set(TICKET_ID.findall(c)))
    first_post: dict[str, float] = {}
    for content, at in zip(fake.contents(), fake.posted_at, strict=True):
        for i in set(TICKET_ID.findall(content)):
            first_post.setdefault(i, at)
    waits = [first_post[i] - created_at[i] for i in created_at if i in first_post]
    times = fake.posted_at
    busiest = max((sum(1 for t in times if s <= t < s + window_s) for s in times), default=0)
    lost = sum(1 for i in created_at if i not in counts)
    repeated = sum(1 for i in counts if counts[i] > 1)
    print(f"tickets created: {tickets} over {window_s:g} s")
    print(f"posts to WeCom: {len(times)}; most in any {window_s:g} s: {busiest} (limit 20)")
    print(f"45009 answers: {fake.refused}; tickets lost: {lost}; posted twice: {repeated}")
    if waits:
        print(
            f"wait from ticket to post: median {statistics.median(waits):.2f} s, "
            f"max {max(waits):.2f} s"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tickets", type=int, default=100)
    parser.add_argument("--window", type=float, default=60.0, help="WeCom's minute, seconds")
    args = parser.parse_args()
    asyncio.run(run(args.tickets, args.window))


if __name__ == "__main__":
    main()
