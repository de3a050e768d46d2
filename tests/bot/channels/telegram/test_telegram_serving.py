"""Polling mode, the CLI commands against the fake Bot API, and the store's
event cursor the staff feed relies on."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest

from bot.app import Core, build_core
from bot.channels.telegram import TelegramChannel
from bot.cli.main import main
from bot.web import create_app
from flows.store import Store


@pytest.mark.anyio
async def test_polling_mode_answers_updates_from_get_updates(
    tg_core: Core, api: Any, telegram_fixture: Any
) -> None:
    channel = TelegramChannel(tg_core, polling=True, outbox_interval_s=0.05)
    await channel.start()
    try:
        assert api.find("deleteWebhook")  # getUpdates needs the webhook off
        api.queue_update(telegram_fixture("private_text"))
        for _ in range(300):
            if api.find("sendMessage", chat_id=111111111):
                break
            await asyncio.sleep(0.02)
        (sent,) = api.find("sendMessage", chat_id=111111111)
        assert "同心" in sent.params["text"]
    finally:
        await channel.stop()
    offsets = [int(c.params.get("offset") or 0) for c in api.find("getUpdates")]
    assert max(offsets) == 861200002  # the update was confirmed


@pytest.mark.anyio
async def test_turns_on_a_thread_when_asked(tg_core: Core, api: Any, telegram_fixture: Any) -> None:
    # The mode used when the NLU asks a Rasa server (a network wait per turn).
    channel = TelegramChannel(tg_core, inline_turns=False)
    await channel.start()
    try:
        transport = httpx.ASGITransport(app=create_app(tg_core, [channel]))
        async with httpx.AsyncClient(transport=transport, base_url="http://t.test") as client:
            response = await client.post(
                "/telegram",
                json=telegram_fixture("private_text"),
                headers={
                    "X-Telegram-Bot-Api-Secret-Token": tg_core.settings.telegram_webhook_secret
                },
            )
            assert response.status_code == 200
            await channel.drain()
        (sent,) = api.find("sendMessage", chat_id=111111111)
        assert "同心" in sent.params["text"]
    finally:
        await channel.stop()


@pytest.mark.anyio
async def test_unreachable_api_at_start_keeps_retrying(tg_core: Core, api: Any) -> None:
    api.fail("getMe", status=502, description="Bad Gateway", times=1)
    channel = TelegramChannel(tg_core)
    await channel.start()
    try:
        assert not channel.ready
        for _ in range(400):
            if channel.ready:
                break
            await asyncio.sleep(0.02)
        assert channel.ready
    finally:
        await channel.stop()


@pytest.fixture
def tg_env(monkeypatch: pytest.MonkeyPatch, api: Any, tmp_path: Path) -> Any:
    monkeypatch.setenv("TONGXIN_DB", str(tmp_path / "cli.db"))
    monkeypatch.setenv("TONGXIN_TELEGRAM_TOKEN", api.token)
    monkeypatch.setenv("TONGXIN_TELEGRAM_API_URL", api.url)
    monkeypatch.setenv("TONGXIN_TELEGRAM_WEBHOOK_SECRET", "s3cret_token-1")
    return api


def test_set_webhook_registers_url_and_secret(
    tg_env: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["telegram", "set-webhook", "https://bot.example.org/telegram"]) == 0
    (call,) = tg_env.find("setWebhook")
    assert call.params["url"] == "https://bot.example.org/telegram"
    assert call.params["secret_token"] == "s3cret_token-1"
    assert call.params["allowed_updates"] == ["message", "edited_message", "callback_query"]
    out = capsys.readouterr().out
    assert "https://bot.example.org/telegram" in out and "s3cret" not in out


def test_set_webhook_refuses_bad_input(
    tg_env: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["telegram", "set-webhook", "http://bot.example.org/telegram"]) == 2
    assert "https" in capsys.readouterr().err
    monkeypatch.delenv("TONGXIN_TELEGRAM_WEBHOOK_SECRET")
    assert main(["telegram", "set-webhook", "https://bot.example.org/telegram"]) == 2
    assert "TONGXIN_TELEGRAM_WEBHOOK_SECRET" in capsys.readouterr().err
    assert tg_env.find("setWebhook") == []


def test_rejected_token_is_never_printed(
    tg_env: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("TONGXIN_TELEGRAM_TOKEN", "123:wrong-token-value")
    assert main(["telegram", "commands"]) == 2
    err = capsys.readouterr().err
    assert "token" in err and "wrong-token-value" not in err


def test_commands_and_delete_webhook(tg_env: Any, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["telegram", "commands"]) == 0
    (call,) = tg_env.find("setMyCommands")
    assert [c["command"] for c in call.params["commands"]] == [
        "start",
        "help",
        "faq",
        "status",
        "cancel",
    ]
    assert "/faq" in capsys.readouterr().out
    assert main(["telegram", "delete-webhook", "--drop-pending-updates"]) == 0
    (call,) = tg_env.find("deleteWebhook")
    assert call.params["drop_pending_updates"] is True


def test_event_cursor(tmp_path: Path) -> None:
    store = Store(tmp_path / "t.db")
    assert store.last_event_id() == 0
    first, _ = store.create_ticket(
        kind="report_issue",
        department="desk",
        channel="wechat",
        user_id="o1",
        phone=None,
        fields={},
    )
    store.change_ticket(first.id, actor="staff", assignee="李明")
    second, _ = store.create_ticket(
        kind="legal_aid",
        department="desk",
        channel="telegram",
        user_id="5",
        phone=None,
        fields={},
    )
    created = store.events_after(0, action="created")
    assert [e.ticket_id for e in created] == [first.id, second.id]
    assert [e.ticket_id for e in store.events_after(created[0].id, action="created")] == [second.id]
    assert len(store.events_after(0)) == 3
    assert store.last_event_id() == store.events_after(0)[-1].id
    assert store.events_after(store.last_event_id()) == []


@pytest.mark.anyio
async def test_two_server_processes_deliver_and_post_once(
    tg_core: Core, tg_settings: Any, nlu_parser: Any, api: Any
) -> None:
    # `tongxin serve --workers 2`: two cores (two SQLite connections) on one file.
    other_core = build_core(tg_settings, parser=nlu_parser, inline_outbox=frozenset())
    channels = [
        TelegramChannel(core, outbox_interval_s=0.02, staff_interval_s=0.02)
        for core in (tg_core, other_core)
    ]
    for channel in channels:
        await channel.start()
    try:
        for n in range(5):
            tg_core.store.enqueue("telegram", str(640000 + n), f"通知{n}", ticket_id=f"TX{n}")
        ticket, _ = other_core.store.create_ticket(
            kind="report_issue",
            department="desk",
            channel="telegram",
            user_id="640100",
            phone=None,
            fields={"description": "垃圾没人清"},
        )
        for _ in range(300):
            done = len(tg_core.store.list_outbox(status="sent")) == 5
            posted = [c for c in api.find("sendMessage") if ticket.id in c.params.get("text", "")]
            if done and posted:
                break
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.3)  # time for a second (wrong) delivery to show
    finally:
        for channel in channels:
            await channel.stop()
        other_core.close()
    for n in range(5):
        assert len(api.find("sendMessage", chat_id=640000 + n)) == 1
    posts = [c for c in api.find("sendMessage") if ticket.id in c.params.get("text", "")]
    assert len(posts) == 1
