"""WeChat channel load test: a live uvicorn on 127.0.0.1, many merchants
completing red-credit pre-applications with signed text messages, 10% of the
messages re-sent as WeChat retries (half while the original is in flight).

Prints messages/s, p50/p99 latency, tickets expected vs created, duplicates and
lost replies. The server runs in its own process(es) so that the load client
does not share its event loop.

    .venv/bin/python bench/wechat_bench.py --users 200 --rate 500
    .venv/bin/python bench/wechat_bench.py --rate 2000   # find the ceiling
    .venv/bin/python bench/wechat_bench.py --workers 2 --mode safe
    .venv/bin/python bench/wechat_bench.py --hosts 2 --backend both   # SQLite vs PostgreSQL

`--hosts N` runs N servers on N ports, as behind a load balancer: each merchant
talks to one host and WeChat's retries of its messages land on the next one.
`--backend postgresql` starts a private PostgreSQL server (Debian's binaries,
as the tests do) with crash-safe settings; `both` runs SQLite, then PostgreSQL,
and prints them side by side.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import random
import secrets
import socket
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode
from xml.etree import ElementTree

TOKEN = "bench_token"
APPID = "wxbench0000000001"
AES_KEY = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C"
ACCOUNT = "gh_bench"


# -- the server (child processes) ---------------------------------------------------


def serve(sock: socket.socket, db: str, mode: str, ready: Any) -> None:
    import logging

    import uvicorn

    from bot.app import build_core
    from bot.channels.wechat import WeChatChannel, WeChatConfig
    from bot.settings import Settings
    from bot.web import create_app

    logging.basicConfig(level=logging.WARNING)
    settings = Settings.from_env(db=db)
    core = build_core(settings, inline_outbox=frozenset())
    config = WeChatConfig(
        token=TOKEN,
        appid=APPID,
        secret=None,  # no outbox delivery: every reply must come back in-line
        aes_key=AES_KEY if mode != "plain" else None,
    )
    app = create_app(core, [WeChatChannel(core, config=config)])
    server = uvicorn.Server(
        uvicorn.Config(app, log_level="warning", access_log=False, timeout_keep_alive=75)
    )
    ready.set()
    server.run(sockets=[sock])


# -- the load (this process) ----------------------------------------------------------


@dataclass
class Results:
    latencies: list[float] = field(default_factory=list)
    sent_at: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    late: int = 0  # answered "success": the reply went to the outbox
    retries: int = 0
    retry_mismatches: int = 0


class Connection:
    """A minimal HTTP/1.1 keep-alive client: the load generator must cost less
    CPU than the server it measures."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        try:
            return await self._post(path, body)
        except (ConnectionError, IndexError, asyncio.IncompleteReadError):
            # The server closed an idle keep-alive connection: reconnect once.
            self.close()
            return await self._post(path, body)

    async def _post(self, path: str, body: bytes) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        assert self.reader is not None
        head = (
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/xml\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode()
        self.writer.write(head + body)
        status_line = await self.reader.readline()
        length = 0
        while True:
            line = await self.reader.readline()
            if line in (b"\r\n", b""):
                break
            name, _, value = line.decode("latin-1").partition(":")
            if name.strip().lower() == "content-length":
                length = int(value.strip())
        payload = await self.reader.readexactly(length)
        return int(status_line.split()[1]), payload

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


class Signer:
    def __init__(self, mode: str) -> None:
        from wechatpy.crypto import WeChatCrypto

        from bot.channels.wechat.security import wechat_signature

        self.mode = mode
        self.sign = wechat_signature
        self.crypto = WeChatCrypto(TOKEN, AES_KEY, APPID)

    def request(self, xml: str) -> tuple[str, bytes]:
        ts, nonce = str(int(time.time())), str(secrets.randbelow(10**9))
        query = {"signature": self.sign(TOKEN, ts, nonce), "timestamp": ts, "nonce": nonce}
        if self.mode == "plain":
            return "/wechat?" + urlencode(query), xml.encode()
        sealed = ElementTree.fromstring(self.crypto.encrypt_message(xml, nonce, ts))
        encrypted = sealed.findtext("Encrypt") or ""
        query |= {"encrypt_type": "aes", "msg_signature": self.sign(TOKEN, ts, nonce, encrypted)}
        body = f"<xml><ToUserName>{ACCOUNT}</ToUserName><Encrypt>{encrypted}</Encrypt></xml>"
        return "/wechat?" + urlencode(query), body.encode()

    def reply_text(self, payload: bytes) -> str | None:
        if not payload.startswith(b"<xml>"):
            return None
        root = ElementTree.fromstring(payload)
        if root.find("Encrypt") is not None:
            plain = self.crypto.decrypt_message(
                payload,
                root.findtext("MsgSignature"),
                root.findtext("TimeStamp"),
                root.findtext("Nonce"),
            )
            root = ElementTree.fromstring(plain)
        return root.findtext("Content")


STEPS = 4  # messages in one pre-application


def conversation(user: int, round_: int) -> list[str]:
    phone = f"139{user * 100 + round_:08d}"
    return ["我开了一家馕店，想申请红色信贷五万元，用来进货", "我叫王芳", phone, "确认"]


async def merchant(
    user: int,
    args: argparse.Namespace,
    ports: list[int],
    signer: Signer,
    results: Results,
    rng: random.Random,
    msg_ids: list[int],
    start_at: float,
) -> None:
    """One merchant typing at the pace that makes `--rate` messages/s in total:
    message k is due at start + phase + k * users / rate (open loop: a slow
    answer does not slow the offered load, it only delays this user's next turn).
    The random phase keeps merchants at different steps of their forms, as real
    users are, instead of all sending their opening message in the same instant."""
    home = user % len(ports)
    conn, retry_conn = Connection(ports[home]), Connection(ports[(home + 1) % len(ports)])
    openid = f"oBench{user:022d}"
    interval = args.users / args.rate
    phase = rng.uniform(0, STEPS * interval)
    k = 0
    try:
        for round_ in range(args.rounds):
            for text in conversation(user, round_):
                due = start_at + phase + k * interval
                k += 1
                delay = due - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                msg_ids[0] += 1
                xml = (
                    f"<xml><ToUserName><![CDATA[{ACCOUNT}]]></ToUserName>"
                    f"<FromUserName><![CDATA[{openid}]]></FromUserName>"
                    f"<CreateTime>{int(time.time())}</CreateTime>"
                    f"<MsgType><![CDATA[text]]></MsgType><Content><![CDATA[{text}]]></Content>"
                    f"<MsgId>{msg_ids[0]}</MsgId></xml>"
                )
                path, body = signer.request(xml)
                retry = rng.random() < args.retries
                in_flight = retry and rng.random() < 0.5

                async def timed(c: Connection, path: str = path, body: bytes = body) -> bytes:
                    t0 = time.perf_counter()
                    status, payload = await c.post(path, body)
                    results.latencies.append(time.perf_counter() - t0)
                    results.sent_at.append(t0)
                    if status != 200:
                        results.errors.append(f"HTTP {status}")
                    return payload

                if in_flight:
                    first, again = await asyncio.gather(timed(conn), timed(retry_conn))
                else:
                    first = await timed(conn)
                    again = await timed(retry_conn) if retry else first
                answer = signer.reply_text(first)
                if answer is None:
                    results.late += 1
                if retry:
                    results.retries += 1
                    if signer.reply_text(again) != answer:
                        results.retry_mismatches += 1
                if text == "确认" and answer is not None and "工单号" not in answer:
                    results.errors.append(f"no ticket in the confirmation: {answer[:60]!r}")
    finally:
        conn.close()
        retry_conn.close()


async def load(ports: list[int], args: argparse.Namespace, results: Results) -> float:
    signer = Signer(args.mode)
    rng = random.Random(args.seed)
    msg_ids = [10**16]
    started = time.perf_counter()
    await asyncio.gather(
        *(
            merchant(u, args, ports, signer, results, rng, msg_ids, started)
            for u in range(args.users)
        )
    )
    return time.perf_counter() - started


def wait_healthy(port: int, timeout: float = 300.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                if b'"status":"ok"' in s.recv(4096):
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise SystemExit("server did not become healthy")


def cpu_seconds(pid: int | None) -> float:
    """User + system CPU time of a process (Linux /proc)."""
    if pid is None:
        return 0.0
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def postgres_cpu_seconds(server: Any) -> float:
    """CPU time of a PostgreSQL server: the postmaster and every backend it forked."""
    if server is None:
        return 0.0
    root = int((server.data / "postmaster.pid").read_text().split()[0])
    total = cpu_seconds(root)
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == root:
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def start_postgres() -> tuple[Any, str]:
    """A private PostgreSQL server for the run, crash-safe (fsync on); commits
    do not wait for the disk (synchronous_commit=off), as SQLite's WAL with
    synchronous=NORMAL does not either."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.pg_server import PgServer

    server = PgServer(durable=True)
    server.admin("ALTER SYSTEM SET synchronous_commit = off")
    server.admin("SELECT pg_reload_conf()")
    return server, server.empty_database()


def run(args: argparse.Namespace, db: str, label: str, pg: Any = None) -> dict[str, Any]:
    """One load run against `args.hosts` hosts x `args.workers` processes on `db`."""
    ctx = multiprocessing.get_context("fork")
    procs, ports = [], []
    for _ in range(args.hosts):
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        sock.listen(1024)
        ports.append(sock.getsockname()[1])
        for _ in range(args.workers):
            ready = ctx.Event()
            proc = ctx.Process(target=serve, args=(sock, db, args.mode, ready), daemon=True)
            proc.start()
            procs.append(proc)
            if label == "postgresql" and len(procs) == 1:
                wait_healthy(ports[0])  # the first creates the schema
    print(f"[{label}] server pids: {' '.join(str(p.pid) for p in procs)}", flush=True)
    for port in ports:
        wait_healthy(port)
    time.sleep(0.5)  # let every worker finish loading

    results = Results()
    server_cpu0 = [cpu_seconds(p.pid) for p in procs]
    db_cpu0 = postgres_cpu_seconds(pg)
    client_cpu0 = time.process_time()
    elapsed = asyncio.run(load(ports, args, results))
    client_cpu = time.process_time() - client_cpu0
    db_cpu = postgres_cpu_seconds(pg) - db_cpu0
    server_cpu = [cpu_seconds(p.pid) - c0 for p, c0 in zip(procs, server_cpu0, strict=True)]
    for proc in procs:
        proc.terminate()
        proc.join(10)

    from flows.store import Store

    store = Store(db)
    phones: dict[str, int] = {}
    for ticket in store.list_tickets(channel="wechat"):
        phones[ticket.phone or ""] = phones.get(ticket.phone or "", 0) + 1
    store.close()
    expected = args.users * args.rounds
    n = len(results.latencies)
    first = min(results.sent_at)
    steady = [
        lat
        for t0, lat in zip(results.sent_at, results.latencies, strict=True)
        if t0 - first >= args.warmup
    ]
    figures = {
        "label": label,
        "requests": n,
        "retries": results.retries,
        "elapsed": elapsed,
        "throughput": n / elapsed,
        "p50": statistics.median(results.latencies) * 1000,
        "p99": percentile(results.latencies, 0.99) * 1000,
        "max": max(results.latencies) * 1000,
        "steady_p99": percentile(steady, 0.99) * 1000 if steady else float("nan"),
        "server_cpu": sum(server_cpu) / elapsed,
        "client_cpu": client_cpu / elapsed,
        "db_cpu": db_cpu / elapsed,
        "per_db_core": (n / db_cpu) if db_cpu else float("nan"),
        "expected": expected,
        "created": sum(phones.values()),
        "lost": expected - len(phones),
        "duplicated": sum(k - 1 for k in phones.values() if k > 1),
        "late": results.late,
        "mismatches": results.retry_mismatches,
        "errors": len(results.errors),
    }
    print(f"[{label}] {args.hosts} host(s) x {args.workers} process(es), mode {args.mode}")
    print(f"users {args.users}, rounds {args.rounds}, requests {n} ({results.retries} retries)")
    print(
        f"offered {args.rate:.0f} messages/s; elapsed {elapsed:.2f} s, "
        f"throughput {n / elapsed:.0f} messages/s (retries included)"
    )
    print(
        f"latency (all) p50 {figures['p50']:.1f} ms, p99 {figures['p99']:.1f} ms, "
        f"max {figures['max']:.1f} ms"
    )
    if steady:
        print(
            f"after the first {args.warmup:.0f} s (ramp-up, cold caches): "
            f"p50 {statistics.median(steady) * 1000:.1f} ms, "
            f"p99 {figures['steady_p99']:.1f} ms ({len(steady)} requests)"
        )
    busy = ", ".join(f"{c / elapsed:.0%}" for c in server_cpu)
    print(
        f"CPU: servers {busy} of a core, load client {client_cpu / elapsed:.0%}"
        + (f", PostgreSQL {db_cpu / elapsed:.0%}" if pg is not None else "")
    )
    print(
        f"tickets expected {expected}, created {figures['created']}, lost {figures['lost']}, "
        f"duplicated {figures['duplicated']}"
    )
    print(
        f"late replies (answered 'success') {results.late}, "
        f"retry replies differing {results.retry_mismatches}, errors {len(results.errors)}"
    )
    if args.timeline:
        start = min(results.sent_at)
        buckets: dict[int, list[float]] = {}
        for t0, lat in zip(results.sent_at, results.latencies, strict=True):
            buckets.setdefault(int(t0 - start), []).append(lat)
        for second, lats in sorted(buckets.items()):
            print(
                f"  t={second:3d}s n={len(lats):4d} p50 {statistics.median(lats) * 1000:6.1f} ms "
                f"p99 {percentile(lats, 0.99) * 1000:6.1f} ms"
            )
    for error in sorted(set(results.errors))[:5]:
        print(f"  error: {error}")
    return figures


def side_by_side(runs: list[dict[str, Any]]) -> None:
    rows = (
        ("throughput, msg/s", "throughput", "{:.0f}"),
        ("p50, ms", "p50", "{:.1f}"),
        ("p99, ms", "p99", "{:.1f}"),
        ("p99 after warm-up, ms", "steady_p99", "{:.1f}"),
        ("server CPU, cores", "server_cpu", "{:.2f}"),
        ("database CPU, cores", "db_cpu", "{:.2f}"),
        ("msg/s per database core", "per_db_core", "{:.0f}"),
        ("tickets lost", "lost", "{}"),
        ("tickets duplicated", "duplicated", "{}"),
        ("retry replies differing", "mismatches", "{}"),
        ("late replies", "late", "{}"),
        ("errors", "errors", "{}"),
    )
    print()
    print(f"{'':<26}" + "".join(f"{r['label']:>14}" for r in runs))
    for title, key, fmt in rows:
        print(f"{title:<26}" + "".join(f"{fmt.format(r[key]):>14}" for r in runs))


def ok(figures: dict[str, Any]) -> bool:
    return not (
        figures["lost"] or figures["duplicated"] or figures["errors"] or figures["mismatches"]
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=200, help="concurrent merchants")
    parser.add_argument("--rounds", type=int, default=3, help="applications per merchant")
    parser.add_argument(
        "--rate", type=float, default=500.0, help="offered messages/s, retries not counted"
    )
    parser.add_argument("--retries", type=float, default=0.10, help="share of messages re-sent")
    parser.add_argument("--workers", type=int, default=1, help="server processes per host")
    parser.add_argument("--hosts", type=int, default=1, help="servers on separate ports")
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="sqlite")
    parser.add_argument("--mode", choices=["plain", "safe"], default="plain")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--warmup", type=float, default=2.0, help="seconds also reported apart (default 2)"
    )
    parser.add_argument("--timeline", action="store_true", help="latency per second of the run")
    parser.add_argument("--db", help="SQLite file or PostgreSQL URL (default: a new one)")
    args = parser.parse_args()

    runs = []
    for backend in ("sqlite", "postgresql") if args.backend == "both" else (args.backend,):
        server = None
        if args.db:
            db = args.db
        elif backend == "sqlite":
            db = str(Path(tempfile.mkdtemp(prefix="wechat-bench-")) / "bench.db")
        else:
            server, db = start_postgres()
        try:
            runs.append(run(args, db, backend, server))
        finally:
            if server is not None:
                server.stop()
    if len(runs) > 1:
        side_by_side(runs)
    return 0 if all(ok(r) for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
