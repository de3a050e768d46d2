"""Telegram webhook path on loopback: updates/s, latency, lost and duplicated tickets.

    .venv/bin/python bench/telegram_bench.py                  # 100 chats, 320 updates/s offered
    .venv/bin/python bench/telegram_bench.py --workers 2      # `tongxin serve --workers 2`
    .venv/bin/python bench/telegram_bench.py --rate 0         # unpaced: as fast as replies come
    .venv/bin/python bench/telegram_bench.py --profile /tmp/server.prof   # cProfile the server

`tongxin serve` runs in a subprocess (its own core, as in production) with
TONGXIN_TELEGRAM_API_URL pointing at a lean Bot API stub served here on
127.0.0.1 (plain asyncio streams, so that the load generator takes as little
of the machine as possible; the Telegram tests use a fuller fake). Every chat
files a legal-aid consultation per round (request, name, phone, 确认) through
POST /telegram with real Update JSON over a keep-alive connection of its own.
A chat sends its next message at its next slot of the offered rate, and never
before the bot answered the previous one (a person waits for the answer).

Latency is measured twice: the webhook's own answer (200 after the secret
check, decode and handling, reply sent), and end to end, from the POST until the first
sendMessage of the reply reaches the Bot API stub. Afterwards a share of the
updates is posted again, as Telegram does when it did not see a 200, and the
tickets are counted: every round must give exactly one ticket per chat.

Target: >= 300 updates/s with p99 <= 100 ms from 100 concurrent chats, zero
lost or duplicated tickets. The breakdown at the end times the pieces in
this process (Update.de_json, Dispatcher.handle) to show where the time goes;
CPU per update of both processes is read from /proc.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SECRET = "bench-secret_0123"
TOKEN = "7000000001:AAEbenchTokenNotReal"
SCRIPT = ("老板拖欠工资三个月不给，我想咨询律师", "王芳", "13912345678", "确认")
FIRST_USER = 910000000
BOT_USER = {"id": 7000000001, "is_bot": True, "first_name": "同心", "username": "tongxin_bench_bot"}


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def cpu_seconds(root: int) -> float:
    """User + system CPU of a process and its children (uvicorn's workers)."""
    stats: dict[int, tuple[int, float]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ticks = int(fields[11]) + int(fields[12])
        stats[int(entry.name)] = (int(fields[1]), ticks / os.sysconf("SC_CLK_TCK"))

    def in_tree(pid: int) -> bool:
        while pid > 1:
            if pid == root:
                return True
            pid = stats.get(pid, (0, 0.0))[0]
        return False

    return sum(cpu for pid, (_, cpu) in stats.items() if in_tree(pid))


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def read_http(reader: asyncio.StreamReader) -> tuple[str, dict[str, str], bytes]:
    """One HTTP/1.1 message with a Content-Length body: (first line, headers, body)."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            name, value = line.split(":", 1)
            headers[name.strip().lower()] = value.strip()
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return lines[0], headers, body


class BotApiStub:
    """sendMessage, getMe, setMyCommands ... with Telegram's JSON shapes."""

    def __init__(self, on_send: Any) -> None:
        self.on_send = on_send
        self.message_id = 0
        self.sent = 0

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                first, _, body = await read_http(reader)
                method = first.split()[1].rsplit("/", 1)[-1]
                result: Any = True
                if method == "getMe":
                    result = BOT_USER
                elif method == "sendMessage":
                    params = dict(parse_qsl(body.decode("utf-8")))
                    chat_id = int(params.get("chat_id", "0"))
                    self.message_id += 1
                    self.sent += 1
                    self.on_send(chat_id)
                    result = {
                        "message_id": self.message_id,
                        "from": BOT_USER,
                        "chat": {"id": chat_id, "first_name": "居民", "type": "private"},
                        "date": int(time.time()),
                        "text": params.get("text", ""),
                    }
                payload = json.dumps({"ok": True, "result": result}, ensure_ascii=False).encode()
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    b"Content-Length: %d\r\n\r\n%s" % (len(payload), payload)
                )
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass  # the client went away, or the bench is shutting down
        finally:
            writer.close()


class Webhook:
    """A keep-alive connection to POST /telegram, as Telegram's webhook client."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, update: dict[str, Any]) -> int:
        if self.writer is None or self.writer.is_closing():
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        assert self.reader is not None
        body = json.dumps(update, ensure_ascii=False).encode()
        self.writer.write(
            b"POST /telegram HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"X-Telegram-Bot-Api-Secret-Token: %s\r\nContent-Length: %d\r\n\r\n%s"
            % (SECRET.encode(), len(body), body)
        )
        first, headers, _ = await read_http(self.reader)
        if headers.get("connection", "").lower() == "close":
            self.writer.close()
        return int(first.split()[1])

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


class Updates:
    """Real Update JSON for private chats, with increasing ids."""

    def __init__(self) -> None:
        self.update_id = 500000000
        self.message_id = 1

    def text(self, user_id: int, text: str) -> dict[str, Any]:
        self.update_id += 1
        self.message_id += 1
        user = {"id": user_id, "is_bot": False, "first_name": "居民", "language_code": "zh-hans"}
        return {
            "update_id": self.update_id,
            "message": {
                "message_id": self.message_id,
                "from": user,
                "chat": {"id": user_id, "first_name": "居民", "type": "private"},
                "date": int(time.time()),
                "text": text,
            },
        }


class Bench:
    def __init__(self, args: argparse.Namespace, workdir: Path) -> None:
        self.args = args
        self.workdir = workdir
        self.api = BotApiStub(self._on_send)
        self.waiters: dict[int, asyncio.Future[float]] = {}
        self.updates = Updates()
        self.posted: list[dict[str, Any]] = []
        self.ack_ms: list[float] = []
        self.e2e_ms: list[float] = []
        self.no_reply = 0
        self.first_post = float("inf")
        self.last_reply = 0.0
        self.bad_status: Counter[int] = Counter()
        self.port = 0

    def _on_send(self, chat_id: int) -> None:
        waiter = self.waiters.get(chat_id)
        if waiter is not None and not waiter.done():
            waiter.set_result(time.perf_counter())

    async def turn(self, hook: Webhook, user_id: int, text: str, record: bool) -> None:
        update = self.updates.text(user_id, text)
        waiter: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self.waiters[user_id] = waiter
        start = time.perf_counter()
        status = await hook.post(update)
        acked = time.perf_counter()
        if status != 200:
            self.bad_status[status] += 1
        try:
            replied: float | None = await asyncio.wait_for(waiter, timeout=30)
        except TimeoutError:
            replied = None
        if not record:
            return
        self.posted.append(update)
        self.ack_ms.append((acked - start) * 1000)
        self.first_post = min(self.first_post, start)
        self.last_reply = max(self.last_reply, replied or acked)
        if replied is None:
            self.no_reply += 1
        else:
            self.e2e_ms.append((replied - start) * 1000)

    async def chat(self, n: int, t0: float, interval: float) -> None:
        hook = Webhook(self.port)
        user_id = FIRST_USER + n
        slot = t0 + random.random() * interval
        try:
            for _ in range(self.args.rounds):
                for text in SCRIPT:
                    delay = slot - time.perf_counter()
                    if delay > 0:
                        await asyncio.sleep(delay)
                    await self.turn(hook, user_id, text, record=True)
                    slot += interval
        finally:
            hook.close()

    async def quiet(self, seconds: float = 1.5, limit: float = 120.0) -> None:
        """Wait until the bot has sent nothing for `seconds`."""
        deadline = time.monotonic() + limit
        last, since = self.api.sent, time.monotonic()
        while time.monotonic() < deadline:
            await asyncio.sleep(0.1)
            if self.api.sent != last:
                last, since = self.api.sent, time.monotonic()
            elif time.monotonic() - since >= seconds:
                return

    async def run(self) -> dict[str, Any]:
        args = self.args
        stub = await asyncio.start_server(self.api.serve, "127.0.0.1", 0)
        api_url = f"http://127.0.0.1:{stub.sockets[0].getsockname()[1]}"
        db = self.workdir / "bench.db"
        self.port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("TONGXIN_")}
        env.update(
            TONGXIN_DB=str(db),
            TONGXIN_TELEGRAM_TOKEN=TOKEN,
            TONGXIN_TELEGRAM_API_URL=api_url,
            TONGXIN_TELEGRAM_WEBHOOK_SECRET=SECRET,
        )
        cmd = [sys.executable]
        if args.profile:
            cmd += ["-m", "cProfile", "-o", args.profile]  # the server's event-loop thread
        cmd += ["-m", "bot.cli.main", "serve", "--host", "127.0.0.1", "--port", str(self.port)]
        cmd += ["--log-level", "warning", "--workers", str(args.workers)]
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env)
        try:
            await self._wait_ready(proc)
            warm = Webhook(self.port)
            for n in range(20):  # warm-up: caches, connections
                await self.turn(warm, FIRST_USER - 1 - n, "你好", record=False)
            warm.close()
            cpu_before, own_before = cpu_seconds(proc.pid), time.process_time()
            interval = args.chats / args.rate if args.rate > 0 else 0.0
            t0 = time.perf_counter()
            await asyncio.gather(*(self.chat(n, t0, interval) for n in range(args.chats)))
            # Measured from the first POST to the last reply (not from t0: the
            # chats start at random phases of their first slot).
            wall = self.last_reply - self.first_post
            cpu = cpu_seconds(proc.pid) - cpu_before
            own = time.process_time() - own_before
            await self.quiet()
            tickets_before = self._tickets(db)
            redelivered = random.sample(self.posted, int(len(self.posted) * args.redeliver))
            hooks = [Webhook(self.port) for _ in range(args.chats)]

            async def again(hook: Webhook, updates: list[dict[str, Any]]) -> None:
                for update in updates:
                    status = await hook.post(update)
                    if status != 200:
                        self.bad_status[status] += 1
                hook.close()

            await asyncio.gather(
                *(again(h, redelivered[i :: len(hooks)]) for i, h in enumerate(hooks))
            )
            await self.quiet()
        finally:
            proc.send_signal(signal.SIGINT)  # uvicorn's clean shutdown (writes a profile)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
            stub.close()
        return {
            "wall": wall,
            "cpu": cpu,
            "own_cpu": own,
            "tickets_before": tickets_before,
            "tickets_after": self._tickets(db),
            "redelivered": len(redelivered),
        }

    async def _wait_ready(self, proc: subprocess.Popen[bytes]) -> None:
        # The server may train the NLU model first if its data changed.
        deadline = time.monotonic() + 900
        probe = Webhook(self.port)
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise SystemExit(f"tongxin serve exited with status {proc.returncode}")
            try:
                if await probe.post(self.updates.text(FIRST_USER - 999, "你好")) == 200:
                    probe.close()
                    return
            except (OSError, asyncio.IncompleteReadError):
                probe.close()
                probe = Webhook(self.port)
            await asyncio.sleep(0.5)
        raise SystemExit("tongxin serve did not become ready")

    @staticmethod
    def _tickets(db: Path) -> Counter[str]:
        from flows.store import Store

        store = Store(db)
        try:
            return Counter(t.user_id for t in store.list_tickets(channel="telegram"))
        finally:
            store.close()


def breakdown(db_dir: Path, turns: int = 400) -> dict[str, float]:
    """Time the pieces in this process: decoding an update, one dialogue turn."""
    from telegram import Bot, Update

    from bot.app import build_core
    from bot.settings import Settings
    from flows.messages import IncomingMessage

    bot = Bot(TOKEN)
    sample = Updates().text(1, SCRIPT[0])
    decode = []
    for _ in range(2000):
        start = time.perf_counter()
        Update.de_json(sample, bot)
        decode.append((time.perf_counter() - start) * 1000)
    env = {k: v for k, v in os.environ.items() if not k.startswith("TONGXIN_")}
    env["TONGXIN_DB"] = str(db_dir / "breakdown.db")
    core = build_core(Settings.from_env(env), inline_outbox=frozenset())
    handle = []
    try:
        for i in range(turns):
            user = str(2000 + i // len(SCRIPT) % 50)
            msg = IncomingMessage(
                channel="telegram",
                user_id=user,
                chat_id=user,
                text=SCRIPT[i % len(SCRIPT)],
                message_id=f"b{i}",
            )
            start = time.perf_counter()
            core.dispatcher.handle(msg)
            handle.append((time.perf_counter() - start) * 1000)
    finally:
        core.close()
    return {
        "decode_p50": statistics.median(decode),
        "handle_p50": statistics.median(handle),
        "handle_p99": pct(handle, 99),
    }


def report(args: argparse.Namespace, bench: Bench, result: dict[str, Any]) -> None:
    updates = len(bench.posted)
    wall = result["wall"]
    rate = updates / wall
    expected = args.chats * args.rounds
    after: Counter[str] = result["tickets_after"]
    created = sum(after.values())
    duplicated = sum(max(0, n - args.rounds) for n in after.values())
    lost = sum(max(0, args.rounds - after.get(str(FIRST_USER + n), 0)) for n in range(args.chats))
    offered = f"{args.rate:g}/s" if args.rate > 0 else "unpaced"
    p99 = pct(bench.e2e_ms, 99)
    print(
        f"telegram webhook bench: {args.chats} chats x {args.rounds} rounds x {len(SCRIPT)} "
        f"messages = {updates} updates, offered {offered}, loopback, {os.cpu_count()} cores"
    )
    print(f"throughput    {rate:.1f} updates/s (wall {wall:.2f} s)")
    print(
        f"webhook ack   p50 {pct(bench.ack_ms, 50):.1f} ms   p99 {pct(bench.ack_ms, 99):.1f} ms"
        "   (POST -> 200: secret check, decode, handle, sendMessage)"
    )
    print(
        f"reply e2e     p50 {pct(bench.e2e_ms, 50):.1f} ms   p99 {p99:.1f} ms   "
        f"max {max(bench.e2e_ms, default=float('nan')):.1f} ms   (POST -> sendMessage at the API)"
    )
    print(
        f"CPU           server {result['cpu'] / updates * 1000:.2f} ms/update "
        f"({result['cpu'] / wall:.0%} of a core, {args.workers} worker(s)); load generator + "
        f"API stub {result['own_cpu'] / updates * 1000:.2f} ms/update "
        f"({result['own_cpu'] / wall:.0%})"
    )
    print(
        f"tickets       expected {expected}, created {created}, lost {lost}, duplicated "
        f"{duplicated} (after {result['redelivered']} redelivered updates; before them "
        f"{sum(result['tickets_before'].values())})"
    )
    print(f"no reply      {bench.no_reply}   non-200 answers {dict(bench.bad_status) or 0}")
    met = rate >= 300 and p99 <= 100 and lost == 0 and duplicated == 0 and args.chats >= 100
    verdict = "MET" if met else "NOT MET"
    print(f"target        >= 300 updates/s, p99 <= 100 ms, 0 lost/duplicated: {verdict}")


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n", 1)[0])
    parser.add_argument("--chats", type=int, default=100, help="concurrent chats (default 100)")
    parser.add_argument("--rounds", type=int, default=5, help="tickets per chat (default 5)")
    parser.add_argument(
        "--rate",
        type=float,
        default=320.0,
        help="offered updates/s, a little over the target; 0 = unpaced (default 320)",
    )
    parser.add_argument(
        "--redeliver", type=float, default=0.2, help="share of updates posted again (default 0.2)"
    )
    parser.add_argument(
        "--workers", type=int, default=1, help="`tongxin serve --workers` (default 1)"
    )
    parser.add_argument("--profile", metavar="PATH", help="cProfile the server into PATH")
    parser.add_argument("--no-breakdown", action="store_true", help="skip the in-process timing")
    args = parser.parse_args()
    random.seed(7)
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="tg-bench-") as tmp:
        bench = Bench(args, Path(tmp))
        result = asyncio.run(bench.run())
        report(args, bench, result)
        print(
            f"machine       load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after "
            f"(other work on the same {os.cpu_count()} cores counts against the figures)"
        )
        if not args.no_breakdown:
            parts = breakdown(Path(tmp))
            print(
                f"breakdown     Update.de_json p50 {parts['decode_p50']:.3f} ms; "
                f"Dispatcher.handle (NLU + SQLite turn) p50 {parts['handle_p50']:.2f} ms "
                f"p99 {parts['handle_p99']:.2f} ms"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
