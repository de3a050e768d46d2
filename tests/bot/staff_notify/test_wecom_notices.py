"""Staff notices to a WeCom group robot, against a local server answering like
WeCom's webhook: what a post says, the 20-a-minute limit with batching, 45009,
restarts and two server processes on one database."""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.staff_notify.service import StaffNoticeService
from bot.staff_notify.wecom import PostWindow, WeComNotifier
from flows.paths import default_data_dir
from flows.replies import Replies
from flows.store import Store

from .fake_wecom import KEY, FakeWeCom

pytestmark = pytest.mark.anyio
REPLIES = Replies.load(default_data_dir() / "replies")
PUBLIC = "https://tongxin.example.gov.cn"
TICKET_ID = re.compile(r"TX\d{6}-\d{4}")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def wecom() -> Iterator[FakeWeCom]:
    fake = FakeWeCom().start()
    yield fake
    fake.stop()


def service(store: Store, url: str, window: PostWindow | None = None) -> StaffNoticeService:
    notifier = WeComNotifier(url, REPLIES, public_url=PUBLIC, window=window)
    return StaffNoticeService(store, notifier, interval_s=0.05)


def report(store: Store, text: str = "小区门口路灯坏了") -> str:
    ticket, _ = store.create_ticket(
        kind="report_issue",
        department="城管科",
        channel="wechat",
        user_id="oUser1",
        phone="13912345678",
        fields={"description": text, "location": "幸福路12号"},
        actor="staff",  # no per-user ticket quota
    )
    return ticket.id


def posted_ids(wecom: FakeWeCom) -> list[str]:
    return [i for c in wecom.contents() for i in dict.fromkeys(TICKET_ID.findall(c))]


async def wait_for(check: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        await asyncio.sleep(0.05)


async def test_new_overdue_and_handoff_tickets_are_posted_as_markdown(
    tmp_path: Path, wecom: FakeWeCom
) -> None:
    store = Store(tmp_path / "t.db")
    svc = service(store, wecom.url)
    await svc.start()
    try:
        new_id = report(store, "路灯坏了，联系我13912345678")
        handoff, _ = store.create_ticket(
            kind="human_handoff",
            department="综合服务窗口",
            channel="telegram",
            user_id="42",
            phone=None,
            fields={"reason": "转人工"},
        )
        store.add_ticket_event(new_id, actor="sweeper", action="overdue")
        await wait_for(lambda: "已超时" in "".join(wecom.contents()))
    finally:
        await svc.stop()
        store.close()
    text = "\n".join(wecom.contents())
    assert wecom.posts[0]["msgtype"] == "markdown"
    assert f"**新工单** {new_id}｜问题反映" in text
    assert "> 部门：城管科" in text
    assert "13912345678" not in text and "139****5678" in text
    assert f"[在工作台打开]({PUBLIC}/staff/tickets/{new_id})" in text
    assert f"**居民请求人工**</font> {handoff.id}" in text
    assert f"**已超时**</font> {new_id}" in text


async def test_a_resident_asking_again_for_a_person_reminds_staff(
    tmp_path: Path, wecom: FakeWeCom, core: Any
) -> None:
    from flows.messages import IncomingMessage

    first = core.dispatcher.turn(IncomingMessage("test", "u1", "转人工"))
    svc = service(core.store, wecom.url)
    await svc.start()
    try:
        again = core.dispatcher.turn(IncomingMessage("test", "u1", "我要找人工客服"))
        (ticket,) = core.store.list_tickets(kind="human_handoff")
        await wait_for(lambda: posted_ids(wecom) == [ticket.id])
    finally:
        await svc.stop()
    assert ticket.id in first.replies[0].text and ticket.id in again.replies[0].text
    assert "居民请求人工" in wecom.contents()[0]


async def test_100_tickets_reach_wecom_in_at_most_20_posts_a_window(tmp_path: Path) -> None:
    """The minute shortened to 2 s on both sides (bench/wecom_bench.py runs the real minute)."""
    window_s = 2.0
    fake = FakeWeCom(window_s=window_s).start()
    store = Store(tmp_path / "t.db")
    svc = service(store, fake.url, PostWindow(window_s=window_s))
    await svc.start()
    try:
        created = []
        for _ in range(100):
            created.append(await asyncio.to_thread(report, store))
            await asyncio.sleep(window_s / 100)
        await wait_for(lambda: len(posted_ids(fake)) >= 100)
        await asyncio.sleep(0.3)  # nothing more arrives
    finally:
        await svc.stop()
        store.close()
        fake.stop()
    ids = posted_ids(fake)
    assert sorted(ids) == sorted(created)  # each once: none lost, none twice
    times = fake.posted_at
    busiest = max(sum(1 for t in times if s <= t < s + window_s) for s in times)
    assert busiest <= 20 and fake.refused == 0
    assert len(times) < 100  # batched


async def test_45009_pauses_and_loses_nothing(
    tmp_path: Path, wecom: FakeWeCom, caplog: Any
) -> None:
    wecom.fail_next(45009)
    store = Store(tmp_path / "t.db")
    svc = service(store, wecom.url, PostWindow(window_s=0.5))
    await svc.start()
    try:
        with caplog.at_level(logging.INFO, logger="tongxin"):
            ticket_id = report(store, "楼道电线裸露，电话13912345678")
            await wait_for(lambda: posted_ids(wecom) == [ticket_id])
            assert svc.health()["reachable"] is True
    finally:
        await svc.stop()
        store.close()
    assert wecom.refused == 1
    assert "45009" in caplog.text
    assert "13912345678" not in caplog.text and "电线" not in caplog.text
    assert KEY not in caplog.text


async def test_other_errors_back_off_and_show_on_healthz_state(
    tmp_path: Path, wecom: FakeWeCom
) -> None:
    store = Store(tmp_path / "t.db")
    notifier = WeComNotifier(wecom.url.replace(KEY, "wrong-key"), REPLIES)
    svc = StaffNoticeService(store, notifier, interval_s=0.05)
    await svc.start()
    try:
        report(store)
        await wait_for(lambda: notifier.last_error is not None)
        state = svc.health()
    finally:
        await svc.stop()
        store.close()
    assert state["reachable"] is False and state["last_error"].startswith("93000")
    assert wecom.posts == []


async def test_a_restart_neither_loses_nor_repeats(tmp_path: Path, wecom: FakeWeCom) -> None:
    db = tmp_path / "t.db"
    store = Store(db)
    svc = service(store, wecom.url)
    await svc.start()
    before = [report(store) for _ in range(3)]
    await wait_for(lambda: len(posted_ids(wecom)) == 3)
    await svc.stop()
    store.close()
    store = Store(db)  # stopped: these wait in the store
    during = [report(store) for _ in range(2)]
    store.close()
    store = Store(db)
    svc = service(store, wecom.url)
    await svc.start()
    try:
        await wait_for(lambda: len(posted_ids(wecom)) >= 5)
        await asyncio.sleep(0.3)
    finally:
        await svc.stop()
        store.close()
    assert posted_ids(wecom) == before + during


async def test_two_processes_on_one_database_post_each_ticket_once(
    tmp_path: Path, wecom: FakeWeCom
) -> None:
    db = tmp_path / "t.db"
    stores = [Store(db), Store(db)]
    services = [service(s, wecom.url) for s in stores]
    for svc in services:
        await svc.start()
    try:
        created = [await asyncio.to_thread(report, stores[n % 2]) for n in range(12)]
        await wait_for(lambda: len(posted_ids(wecom)) >= 12)
        await asyncio.sleep(0.3)
    finally:
        for svc in services:
            await svc.stop()
        for s in stores:
            s.close()
    assert posted_ids(wecom) == created


def test_serve_wires_wecom_when_the_webhook_is_set(tmp_path: Path, wecom: FakeWeCom) -> None:
    from bot.cli.serve_cmd import build_channels
    from bot.settings import Settings

    settings = Settings.from_env(
        {"TONGXIN_WECOM_WEBHOOK_URL": wecom.url, "TONGXIN_PUBLIC_URL": PUBLIC + "/"},
        db=str(tmp_path / "t.db"),
    )
    assert settings.public_url == PUBLIC

    class FakeCore:
        store = None
        replies = REPLIES

    FakeCore.settings = settings  # type: ignore[attr-defined]
    (svc,) = build_channels(FakeCore, telegram_polling=False)
    assert svc.name == "wecom" and svc.routes() == []
    assert svc.notifier.webhook_url == wecom.url and svc.notifier.public_url == PUBLIC
