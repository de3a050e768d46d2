"""Two `tongxin serve` hosts on one PostgreSQL database, as behind a load
balancer: WeChat's retries land on the other host, one resident's messages
alternate between hosts, outbox rows are delivered once across hosts, and a
host killed with kill -9 under load loses and doubles nothing."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from xml.etree import ElementTree

import httpx
import pytest

from bot.channels.wechat.security import wechat_signature
from flows.store import Store
from nlu.parser import Parser
from tests.hardening.live import TOKEN, LiveServer, start_server
from tests.pg_server import PgServer

from .conftest import APPID, SECRET, FakeWeChatApi

_ids = iter(range(25_000_000_000_000_000, 26_000_000_000_000_000))
_ids_lock = threading.Lock()


def conversation(phone: str) -> list[str]:
    return ["我开了一家馕店，想申请红色信贷五万元，用来进货", "我叫王芳", phone, "确认"]


def post(host: LiveServer, user: str, text: str, msg_id: int, timeout: float = 10) -> str | None:
    """One signed WeChat text message; the reply's text (None for `success`)."""
    ts, nonce = str(int(time.time())), str(msg_id % 10**9)
    query = {"signature": wechat_signature(TOKEN, ts, nonce), "timestamp": ts, "nonce": nonce}
    xml = (
        f"<xml><ToUserName><![CDATA[gh_tongxin0001]]></ToUserName>"
        f"<FromUserName><![CDATA[{user}]]></FromUserName>"
        f"<CreateTime>{ts}</CreateTime><MsgType><![CDATA[text]]></MsgType>"
        f"<Content><![CDATA[{text}]]></Content><MsgId>{msg_id}</MsgId></xml>"
    )
    answer = httpx.post(host.url + "/wechat", params=query, content=xml.encode(), timeout=timeout)
    answer.raise_for_status()
    if not answer.text.startswith("<xml>"):
        return None
    return ElementTree.fromstring(answer.text).findtext("Content")


def next_id() -> int:
    with _ids_lock:
        return next(_ids)


@pytest.fixture(scope="module")
def api() -> Iterator[FakeWeChatApi]:
    fake = FakeWeChatApi().start()
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def hosts(
    tmp_path_factory: pytest.TempPathFactory,
    model_dir: Path,
    nlu_parser: Parser,
    api: FakeWeChatApi,
    pg_server: PgServer,
) -> Iterator[tuple[str, list[LiveServer]]]:
    """Two hosts for the module (they take seconds to start); the last test kills one."""
    tmp_path = tmp_path_factory.mktemp("hosts")
    url = pg_server.fresh_database()
    env = {
        "TONGXIN_DB": url,
        "TONGXIN_WECHAT_APPID": APPID,
        "TONGXIN_WECHAT_SECRET": SECRET,
        "TONGXIN_WECHAT_API_URL": api.url,
    }
    started = [start_server(tmp_path, model_dir, env, name=f"host{i}") for i in range(2)]
    yield url, started
    for host in started:
        host.stop()
    for host in started:
        assert "Traceback" not in host.log()


def test_retries_on_the_other_host_and_one_residents_messages_across_hosts(
    hosts: tuple[str, list[LiveServer]],
) -> None:
    url, (a, b) = hosts
    user = "oMultiHost0000000000000000001"
    answers = []
    with ThreadPoolExecutor(2) as pool:
        for step, text in enumerate(conversation("13900001111")):
            first, other = (a, b) if step % 2 == 0 else (b, a)
            msg_id = next_id()
            # WeChat's retry of the same message reaches the other host while
            # the first attempt is still being answered.
            both = [pool.submit(post, h, user, text, msg_id) for h in (first, other)]
            replies = [f.result() for f in both]
            assert replies[0] == replies[1], (text, replies)
            answers.append(replies[0])
    assert answers[-1] is not None and "工单号" in answers[-1]
    store = Store(url)
    try:
        [ticket] = store.list_tickets(user_id=user)
        assert ticket.phone == "13900001111" and ticket.kind == "microloan"
        incoming = [m["text"] for m in store.message_log("wechat", user) if m["direction"] == "in"]
        assert incoming == [
            "我开了一家馕店，想申请红色信贷五万元，用来进货",
            "我叫王芳",
            "139****1111",
            "确认",
        ]
    finally:
        store.close()


def test_outbox_rows_are_delivered_once_across_hosts(
    hosts: tuple[str, list[LiveServer]], api: FakeWeChatApi
) -> None:
    url, _ = hosts
    store = Store(url)
    try:
        for i in range(40):
            store.enqueue("wechat", f"oOutbox{i:03d}", f"您的工单有新进展 {i}")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and len(store.list_outbox(status="sent")) < 40:
            time.sleep(0.2)
        assert len(store.list_outbox(status="sent")) == 40
    finally:
        store.close()
    time.sleep(1.5)  # another pass of both hosts' workers sends nothing more
    for i in range(40):
        assert api.texts_to(f"oOutbox{i:03d}") == [f"您的工单有新进展 {i}"]


# Last in the module: it kills a host.
def test_a_host_killed_under_load_loses_and_doubles_nothing(
    hosts: tuple[str, list[LiveServer]],
) -> None:
    url, (a, b) = hosts
    users = [f"oKill{i:024d}" for i in range(16)]
    killed = threading.Event()
    failovers: list[str] = []
    rng = random.Random(3)

    def resident(index: int, user: str) -> str | None:
        last = None
        for step, text in enumerate(conversation(f"1390000{index:04d}")):
            msg_id = next_id()
            host = (a, b)[(index + step) % 2]
            if host is a and killed.is_set():
                host = b  # the load balancer stops sending to the dead host
            try:
                last = post(host, user, text, msg_id)
            except httpx.HTTPError:
                # No answer from the killed host: WeChat sends the message again,
                # and the balancer sends it to the host that is left.
                failovers.append(text)
                last = post(b, user, text, msg_id)
            if rng.random() < 0.2:  # and now and then a retry anyway
                assert post(b, user, text, msg_id) == last
            time.sleep(rng.uniform(0.1, 0.4))  # residents type at their own pace
        return last

    with ThreadPoolExecutor(len(users)) as pool:
        futures = [pool.submit(resident, i, u) for i, u in enumerate(users)]
        time.sleep(0.8)
        a.kill9()
        time.sleep(0.5)  # the balancer's health check notices a moment later
        killed.set()
        finals = [f.result() for f in futures]
    assert failovers  # some messages were sent to the dead host and retried
    store = Store(url)
    try:
        tickets = [t for t in store.list_tickets(kind="microloan") if t.user_id in users]
    finally:
        store.close()
    phones = sorted(t.phone or "" for t in tickets)
    assert phones == sorted(f"1390000{i:04d}" for i in range(len(users)))  # none lost, none doubled
    for final in finals:
        assert final is not None and "工单号" in final
