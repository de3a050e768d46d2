"""Ticket updates after WeChat's 48-hour window: sent again as template
messages, against the fake WeChat API (token, custom send answering 45015,
message/template/send), request bodies checked field by field."""

from __future__ import annotations

import asyncio
import json
import shutil
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.channels.outbox import Backoff
from bot.channels.wechat.delivery import OutboxWorker
from bot.channels.wechat.templates import (
    TemplateBook,
    TicketTemplate,
    TicketTemplates,
    template_problems,
)
from bot.channels.wechat_api import WeChatApi
from bot.cli.main import main
from flows.paths import default_data_dir
from flows.replies import Replies
from flows.store import Store

from .conftest import APPID, SECRET

USER = "oFq3Q5xYk2WmTn7Rb9HcL0gZ1aVe"
TEMPLATE_ID = "ngqIpbwh8bUfcSsECmogfXcV14J0tQlEpBO27izEYtY"

pytestmark = pytest.mark.anyio


def data_dir_with_templates(tmp_path: Path, template_id: str | None = TEMPLATE_ID) -> Path:
    data = tmp_path / "data"
    shutil.copytree(default_data_dir(), data)
    path = data / "wechat_templates.yml"
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    raw["templates"]["default"]["template_id"] = template_id
    path.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    return data


def new_ticket(store: Store, user: str = USER) -> str:
    ticket, _ = store.create_ticket(
        kind="dispute_mediation",
        department="和和家调解室",
        channel="wechat",
        user_id=user,
        phone=None,
        fields={"description": "商户与顾客的纠纷"},
    )
    return ticket.id


async def test_update_after_45015_goes_out_as_a_template_within_5_s(
    tmp_path: Path, kit_factory: Any, fake_api: Any
) -> None:
    fake_api.out_of_window.add(USER)
    fake_api.templates.add(TEMPLATE_ID)
    async with kit_factory(data_dir=data_dir_with_templates(tmp_path)) as kit:
        store = kit.core.store
        ticket_id = await asyncio.to_thread(new_ticket, store)
        note = "调解已完成，双方签署了调解协议，请到调解室领取协议书原件"
        await asyncio.to_thread(
            store.change_ticket, ticket_id, actor="staff", status="in_progress", notify_text=note
        )
        kit.channel._wake.set()
        deadline = time.monotonic() + 10
        while not fake_api.template_sends and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        (body,) = fake_api.template_sends
        assert fake_api.refused_at, "the customer-service send was tried first"
        assert fake_api.template_sent_at[0] - fake_api.refused_at[0] < 5.0
        (row,) = await asyncio.to_thread(store.list_outbox, ticket_id=ticket_id)
    assert row.status == "sent" and row.last_error is None
    assert body["touser"] == USER
    assert body["template_id"] == TEMPLATE_ID
    assert "url" not in body
    data = body["data"]
    assert set(data) == {"character_string1", "thing2", "thing3", "thing4", "time5"}
    assert data["character_string1"] == {"value": ticket_id}
    assert data["thing2"] == {"value": "矛盾调解"}
    assert data["thing3"] == {"value": "办理中"}
    # WeChat's `thing` fields take 20 characters: the note is cut, not refused.
    assert data["thing4"]["value"] == note[:19] + "…"
    assert len(data["time5"]["value"]) == len("2026年12月02日 13:22")
    assert fake_api.texts_to(USER) == []


def worker(store: Store, url: str, book: TemplateBook) -> OutboxWorker:
    api = WeChatApi(store, appid=APPID, secret=SECRET, base_url=url)
    templates = TicketTemplates(store, Replies.load(default_data_dir() / "replies"), book)
    return OutboxWorker(
        store, api, backoff=Backoff(first_s=30, max_s=60, max_attempts=3), templates=templates
    )


def configured(template_id: str = TEMPLATE_ID) -> TemplateBook:
    fields = {"character_string1": "ticket_id", "thing2": "status"}
    return TemplateBook({"default": TicketTemplate("default", template_id, fields)})


def test_without_a_template_the_failure_is_shown_to_staff(
    tmp_path: Path, fake_api: Any, capsys: Any
) -> None:
    db = tmp_path / "t.db"
    store = Store(db)
    try:
        fake_api.out_of_window.add(USER)
        ticket_id = new_ticket(store)
        store.change_ticket(ticket_id, actor="staff", status="resolved", notify_text="已办结")
        unconfigured = TemplateBook.load(default_data_dir() / "wechat_templates.yml")
        report = worker(store, fake_api.url, unconfigured).deliver_due()
        assert len(report.failed) == 1 and fake_api.template_sends == []
    finally:
        store.close()
    assert main(["outbox", "list", "--status", "failed", "--json", "--db", str(db)]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row["last_error"].startswith("45015")
    assert "48-hour" in row["last_error"]
    assert "no template message configured" in row["last_error"]
    assert "wechat_templates.yml" in row["last_error"]


def test_an_unknown_template_id_is_recorded_on_the_row(tmp_path: Path, fake_api: Any) -> None:
    store = Store(tmp_path / "t.db")
    try:
        fake_api.out_of_window.add(USER)
        ticket_id = new_ticket(store)
        store.change_ticket(ticket_id, actor="staff", status="resolved", notify_text="已办结")
        w = worker(store, fake_api.url, configured("NO_SUCH_TEMPLATE"))
        assert len(w.deliver_due().failed) == 1
        (row,) = store.list_outbox(ticket_id=ticket_id)
        assert row.status == "failed"
        assert row.last_error.startswith("template message: 40037 unknown template id")
        assert w.deliver_due().sent == []  # final: not sent again
    finally:
        store.close()


def test_a_user_silent_for_48_hours_gets_the_template_without_a_refusal(
    tmp_path: Path, fake_api: Any
) -> None:
    db = tmp_path / "t.db"
    store = Store(db)
    try:
        fake_api.templates.add(TEMPLATE_ID)
        store.log_message("wechat", USER, "in", "我要调解")
        with sqlite3.connect(db) as raw:  # that message was three days ago
            raw.execute("UPDATE message_log SET at = '2020-01-01T00:00:00.000000+00:00'")
        ticket_id = new_ticket(store)
        store.change_ticket(ticket_id, actor="staff", status="resolved", notify_text="已办结")
        assert len(worker(store, fake_api.url, configured()).deliver_due().sent) == 1
    finally:
        store.close()
    assert fake_api.refused_at == [] and fake_api.sent == []
    (body,) = fake_api.template_sends
    assert body["data"] == {
        "character_string1": {"value": ticket_id},
        "thing2": {"value": "已办结"},
    }


def test_messages_not_about_a_ticket_still_fail_with_45015(tmp_path: Path, fake_api: Any) -> None:
    store = Store(tmp_path / "t.db")
    try:
        fake_api.out_of_window.add(USER)
        fake_api.templates.add(TEMPLATE_ID)
        store.enqueue("wechat", USER, "迟到的回复")
        assert len(worker(store, fake_api.url, configured()).deliver_due().failed) == 1
        (row,) = store.list_outbox()
        assert row.last_error.startswith("45015") and fake_api.template_sends == []
    finally:
        store.close()


def test_check_data_reports_a_broken_template_file(tmp_path: Path) -> None:
    path = tmp_path / "wechat_templates.yml"
    path.write_text(
        "templates:\n  default:\n    template_id: abc\n"
        "    fields: {thing2: kind, 'not a field': ticket_id, time5: weather}\n"
        "  finished:\n    template_id: x\n    fields: {thing1: note}\n",
        encoding="utf-8",
    )
    problems = template_problems(path)
    assert any("'not a field' is not a WeChat field name" in p for p in problems)
    assert any("'weather' is not one of" in p for p in problems)
    assert any("templates.finished: unknown update kind" in p for p in problems)
