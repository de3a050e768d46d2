"""Outbound: the shared access token, the outbox worker's handling of WeChat's
answers, and `tongxin wechat menu`, all against the fake API on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from pathlib import Path
from typing import Any

import pytest

from bot.channels.outbox import Backoff
from bot.channels.wechat.delivery import OutboxWorker
from bot.channels.wechat_api import (
    SharedTokenCache,
    WeChatApi,
    WeChatApiError,
    WeChatNetworkError,
)
from bot.cli.main import main
from flows.store import Store

APPID = "wx5823bf96d3bd56c7"
SECRET = "test_app_secret_0123456789abcdef"
USER = "oFq3Q5xYk2WmTn7Rb9HcL0gZ1aVe"


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "tongxin.db"


@pytest.fixture
def store(db: Path):
    s = Store(db)
    yield s
    s.close()


def api_for(store: Store, url: str, **kwargs) -> WeChatApi:
    return WeChatApi(store, appid=APPID, secret=SECRET, base_url=url, **kwargs)


def worker_for(store: Store, api: WeChatApi, **kwargs) -> OutboxWorker:
    kwargs.setdefault("backoff", Backoff(first_s=30, max_s=600, max_attempts=3))
    return OutboxWorker(store, api, **kwargs)


def closed_port_url() -> str:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there now
    return f"http://127.0.0.1:{port}"


# -- the access token -------------------------------------------------------------


def test_token_is_fetched_once_and_shared_by_all_processes(db: Path, fake_api) -> None:
    stores = [Store(db) for _ in range(3)]  # three processes' connections to one file
    try:
        for n, s in enumerate(stores):
            api_for(s, fake_api.url).send_text(USER, f"消息{n}")
        assert fake_api.token_requests == 1
        assert fake_api.texts_to(USER) == ["消息0", "消息1", "消息2"]
    finally:
        for s in stores:
            s.close()


@pytest.mark.parametrize("invalidate", ["expire_tokens", "revoke_tokens"])
def test_token_refreshed_on_42001_and_40001(store: Store, fake_api, invalidate: str) -> None:
    api = api_for(store, fake_api.url)
    api.send_text(USER, "第一条")
    getattr(fake_api, invalidate)()  # 42001 expired / 40001 not the latest
    api.send_text(USER, "第二条")
    assert fake_api.texts_to(USER) == ["第一条", "第二条"]
    assert fake_api.token_requests == 2


def test_a_refresh_after_another_process_refreshed_reuses_its_token(db: Path) -> None:
    """Process b's call failed with the old token while a already stored a new one:
    b takes a's token instead of fetching (each fetch invalidates the last)."""
    fetched: list[str] = []

    def fetch() -> tuple[str, float]:
        fetched.append(f"T{len(fetched)}")
        return fetched[-1], 7200

    first, second = Store(db), Store(db)
    try:
        a, b = SharedTokenCache(first, APPID, fetch), SharedTokenCache(second, APPID, fetch)
        old = a.get()
        assert b.get() == old and fetched == ["T0"]
        new = a.refresh(stale=old)
        assert b.refresh(stale=old) == new
        assert fetched == ["T0", "T1"]
        assert b.refresh(stale=new) == "T2"  # b's own failure with the newest token
    finally:
        first.close()
        second.close()


def test_expired_token_in_the_store_is_not_used(store: Store, fake_api) -> None:
    api = api_for(store, fake_api.url)
    store.kv_set(api.tokens.key, "OLD", ttl_s=-1)  # past its expiry
    api.send_text(USER, "你好")
    assert fake_api.token_requests == 1 and fake_api.texts_to(USER) == ["你好"]


def test_wrong_secret_is_an_api_error_not_a_crash(store: Store, fake_api) -> None:
    api = WeChatApi(store, appid=APPID, secret="wrong", base_url=fake_api.url)
    with pytest.raises(WeChatApiError) as err:
        api.send_text(USER, "x")
    assert err.value.errcode == 40125


# -- the outbox worker ------------------------------------------------------------------


def test_worker_delivers_ticket_updates(store: Store, fake_api) -> None:
    ticket, _ = store.create_ticket(
        kind="report_issue",
        department="desk",
        channel="wechat",
        user_id=USER,
        phone=None,
        fields={"description": "路灯坏了"},
    )
    store.change_ticket(ticket.id, actor="staff", status="in_progress", notify_text="已派人维修")
    report = worker_for(store, api_for(store, fake_api.url)).deliver_due()
    assert len(report.sent) == 1
    assert fake_api.texts_to(USER) == ["已派人维修"]
    (item,) = store.list_outbox(ticket_id=ticket.id)
    assert item.status == "sent"


@pytest.mark.parametrize(
    ("errcode", "words"),
    [(45015, "48-hour"), (45047, "quota"), (45009, "quota"), (43004, "unsubscribed")],
)
def test_window_and_quota_errors_are_final_and_shown_to_staff(
    db: Path, store: Store, fake_api, capsys, errcode: int, words: str
) -> None:
    store.enqueue("wechat", USER, "您的工单已办结")
    fake_api.fail_next(errcode)
    worker = worker_for(store, api_for(store, fake_api.url))
    report = worker.deliver_due()
    assert len(report.failed) == 1
    assert worker.deliver_due().sent == []  # not retried
    assert fake_api.texts_to(USER) == []
    assert main(["outbox", "list", "--status", "failed", "--json", "--db", str(db)]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row["status"] == "failed" and row["attempts"] == 1
    assert row["last_error"].startswith(str(errcode)) and words in row["last_error"]
    assert main(["outbox", "list", "--db", str(db)]) == 0
    assert str(errcode) in capsys.readouterr().out


def test_network_errors_back_off_and_finally_give_up(store: Store) -> None:
    store.enqueue("wechat", USER, "您的调解已安排")
    api = api_for(store, closed_port_url(), timeout_s=1)
    store.kv_set(api.tokens.key, "TOKEN", ttl_s=3600)  # so only the send itself fails
    worker = worker_for(store, api, backoff=Backoff(first_s=0, max_s=0, max_attempts=3))
    assert worker.deliver_due().retrying
    (item,) = store.list_outbox()
    assert item.status == "pending" and item.last_error.startswith("network")
    worker.deliver_due()
    worker.deliver_due()
    (item,) = store.list_outbox()
    assert item.status == "failed" and item.attempts == 3 and "gave up" in item.last_error


def test_back_off_delays_the_next_attempt(store: Store) -> None:
    store.enqueue("wechat", USER, "x")
    api = api_for(store, closed_port_url(), timeout_s=1)
    store.kv_set(api.tokens.key, "TOKEN", ttl_s=3600)
    worker = worker_for(store, api)  # first back-off: 30 s
    assert worker.deliver_due().retrying
    assert store.due_outbox("wechat") == []  # not due again yet
    (item,) = store.list_outbox()
    assert item.next_attempt_at > item.created_at


def test_a_slow_api_is_a_network_error(store: Store, fake_api) -> None:
    fake_api.delay_s = 1.0
    api = api_for(store, fake_api.url, timeout_s=0.3)
    with pytest.raises(WeChatNetworkError):
        api.send_text(USER, "慢")
    store.enqueue("wechat", USER, "慢")
    assert worker_for(store, api).deliver_due().retrying


def test_a_send_that_timed_out_is_retried_as_a_possible_repeat(store: Store, fake_api) -> None:
    """No answer may still mean delivered: the retries say it may be a repeat,
    also after a retry WeChat refused. A first attempt refused means not
    delivered: its retry is plain."""
    api = api_for(store, fake_api.url, timeout_s=0.3)
    api.tokens.get()  # the token is in hand; the send itself times out
    fake_api.delay_s = 1.0
    store.enqueue("wechat", USER, "您的工单已办结")
    timing_out = worker_for(store, api)
    timing_out.repeat_notice = "（可能重复）"
    assert timing_out.deliver_due().retrying
    fake_api.delay_s = 0.0
    store._exec("UPDATE outbox SET next_attempt_at = created_at")  # due again now
    fake_api.fail_next(-1)
    assert timing_out.deliver_due().retrying  # busy
    store._exec("UPDATE outbox SET next_attempt_at = created_at")
    assert timing_out.deliver_due().sent
    time.sleep(1.0)  # the timed-out request reaches the fake after its delay
    assert sorted(fake_api.texts_to(USER)) == ["您的工单已办结", "（可能重复）\n您的工单已办结"]
    store.enqueue("wechat", USER, "第二条")
    fake_api.fail_next(-1)
    assert timing_out.deliver_due().retrying
    store._exec("UPDATE outbox SET next_attempt_at = created_at")
    assert timing_out.deliver_due().sent
    assert fake_api.texts_to(USER)[2:] == ["第二条"]


def test_system_busy_is_retried_later(store: Store, fake_api) -> None:
    store.enqueue("wechat", USER, "稍后")
    fake_api.fail_next(-1)
    worker = worker_for(store, api_for(store, fake_api.url), backoff=Backoff(0, 0, 5))
    assert worker.deliver_due().retrying
    assert worker.deliver_due().sent
    assert fake_api.texts_to(USER) == ["稍后"]


def test_a_200_answer_that_is_not_json_is_not_counted_as_sent(store: Store, fake_api) -> None:
    store.enqueue("wechat", USER, "您的工单已受理")
    fake_api.html_answers = 1
    worker = worker_for(store, api_for(store, fake_api.url), backoff=Backoff(0, 0, 5))
    assert worker.deliver_due().retrying
    (item,) = store.list_outbox()
    assert item.status == "pending" and "not WeChat's JSON" in (item.last_error or "")
    assert worker.deliver_due().sent == [item.id]
    assert fake_api.texts_to(USER) == ["您的工单已受理"]


def test_only_one_worker_delivers_at_a_time(db: Path, fake_api) -> None:
    first, second = Store(db), Store(db)
    try:
        for n in range(3):
            first.enqueue("wechat", USER, f"通知{n}")
        a = worker_for(first, api_for(first, fake_api.url))
        b = worker_for(second, api_for(second, fake_api.url))
        assert len(a.deliver_due().sent) == 3
        assert b.deliver_due().sent == []  # a holds the lease
        a.release()
        second.enqueue("wechat", USER, "通知3")
        assert len(b.deliver_due().sent) == 1
        assert fake_api.texts_to(USER) == ["通知0", "通知1", "通知2", "通知3"]
    finally:
        first.close()
        second.close()


def test_a_long_notification_goes_out_in_parts(store: Store, fake_api) -> None:
    store.enqueue("wechat", USER, "办理进展说明。" * 300)
    worker_for(store, api_for(store, fake_api.url)).deliver_due()
    sent = fake_api.texts_to(USER)
    assert len(sent) > 1 and all(len(t.encode("utf-8")) <= 2048 for t in sent)


# -- tongxin wechat menu -----------------------------------------------------------------


def test_menu_command_pushes_the_menu(db: Path, fake_api, monkeypatch, capsys) -> None:
    monkeypatch.setenv("TONGXIN_WECHAT_APPID", APPID)
    monkeypatch.setenv("TONGXIN_WECHAT_SECRET", SECRET)
    monkeypatch.setenv("TONGXIN_WECHAT_API_URL", fake_api.url)
    assert main(["wechat", "menu", "--db", str(db)]) == 0
    (menu,) = fake_api.menus
    names = [b["name"] for b in menu["button"]]
    assert names == ["办事服务", "志愿报名", "我的"]
    assert "menu pushed" in capsys.readouterr().out


def test_menu_dry_run_pushes_nothing(db: Path, fake_api, monkeypatch, capsys) -> None:
    monkeypatch.setenv("TONGXIN_WECHAT_API_URL", fake_api.url)
    assert main(["wechat", "menu", "--dry-run", "--db", str(db)]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["button"][0]["sub_button"][1]["key"] == "flow_microloan"
    assert fake_api.menus == []


def test_menu_command_errors_are_clean(db: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.delenv("TONGXIN_WECHAT_APPID", raising=False)
    assert main(["wechat", "menu", "--db", str(db)]) == 2
    assert "TONGXIN_WECHAT_APPID" in capsys.readouterr().err
    bad = tmp_path / "menu.yml"
    bad.write_text("button:\n  - {type: click, name: 贷款, key: nope}\n", encoding="utf-8")
    assert main(["wechat", "menu", "--dry-run", "--file", str(bad), "--db", str(db)]) == 2
    assert "nope" in capsys.readouterr().err


@pytest.mark.anyio
async def test_full_batches_go_out_without_waiting_for_the_next_poll(
    store: Store, fake_api: Any
) -> None:
    for i in range(100):
        store.enqueue("wechat", "oBatchUser", f"通知{i}")
    worker = worker_for(store, api_for(store, fake_api.url), batch=20)
    wake, stop = asyncio.Event(), asyncio.Event()
    started = time.monotonic()
    running = asyncio.create_task(worker.run(wake, stop, poll_s=2.0))
    while len(fake_api.texts_to("oBatchUser")) < 100 and time.monotonic() - started < 8:
        await asyncio.sleep(0.05)
    elapsed = time.monotonic() - started
    stop.set()
    await running
    assert len(fake_api.texts_to("oBatchUser")) == 100
    assert elapsed < 2.0  # five batches, not five 2-second polls
