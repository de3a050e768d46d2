"""/start (with deep-link payload), /help, /faq, /status, /cancel, in private
chats and groups, and the command menu registered at start."""

from __future__ import annotations

from typing import Any

import pytest

pytestmark = pytest.mark.anyio


async def test_commands_are_registered_at_start(tg: Any) -> None:
    (call,) = tg.api.find("setMyCommands")
    names = [c["command"] for c in call.params["commands"]]
    assert names == ["start", "help", "faq", "status", "cancel"]
    assert all(c["description"].strip() for c in call.params["commands"])


async def test_start_without_payload_welcomes(tg: Any) -> None:
    user = tg.person(610001, "古丽")
    (sent,) = await tg.say(tg.message(user, "/start"))
    assert tg.core.replies.text("welcome", capabilities="").split("\n")[0] in sent.params["text"]


async def test_start_with_recorded_payload_fixture(tg: Any) -> None:
    # The fixture's payload was never issued by this database: expired link.
    sent = await tg.say(tg.fixture("command_start_payload"))
    assert tg.core.replies.text("form.deeplink_expired") in sent[0].params["text"]


async def test_help_in_private_and_addressed_in_group(tg: Any) -> None:
    user = tg.person(610002, "建国")
    (sent,) = await tg.say(tg.message(user, "/help"))
    assert "/faq" in sent.params["text"] and "/status" in sent.params["text"]
    (sent,) = await tg.say(tg.message(user, f"/help@{tg.BOT['username']}", chat=tg.GROUP))
    assert sent.chat() == tg.GROUP["id"] and "/faq" in sent.params["text"]
    assert await tg.say(tg.message(user, "/help@some_other_bot", chat=tg.GROUP)) == []


async def test_unknown_commands(tg: Any) -> None:
    user = tg.person(610003, "小王")
    (sent,) = await tg.say(tg.message(user, "/weather"))
    assert sent.params["text"] == tg.core.replies.text("telegram.unknown_command")
    # In a group a bare unknown command may be another bot's.
    assert await tg.say(tg.message(user, "/weather", chat=tg.GROUP)) == []
    (sent,) = await tg.say(tg.message(user, f"/weather@{tg.BOT['username']}", chat=tg.GROUP))
    assert sent.chat() == tg.GROUP["id"]


async def test_faq_command_answers_in_the_group(tg: Any) -> None:
    user = tg.person(610004, "热依拉")
    sent = await tg.say(tg.message(user, "/faq 调解收费吗", chat=tg.GROUP))
    assert len(sent) == 1
    assert sent[0].chat() == tg.GROUP["id"]
    match = tg.core.faq.search("调解收费吗", 1)[0]
    assert match.answer.split("\n")[0] in sent[0].params["text"]
    (usage,) = await tg.say(tg.message(user, "/faq", chat=tg.GROUP))
    assert usage.params["text"] == tg.core.replies.text("telegram.faq_usage")


async def test_status_in_a_group_points_to_the_private_chat(tg: Any) -> None:
    user = tg.person(610005, "老李")
    await tg.say(tg.message(user, "转人工"))
    (ticket,) = tg.core.store.list_tickets(user_id="610005")
    (sent,) = [
        c
        for c in await tg.say(tg.message(user, "/status", chat=tg.GROUP))
        if c.chat() == tg.GROUP["id"]
    ]
    assert sent.chat() == tg.GROUP["id"]
    assert ticket.id not in sent.params["text"]
    (row,) = sent.params["reply_markup"]["inline_keyboard"]
    assert row[0]["url"] == f"https://t.me/{tg.BOT['username']}?start=ticket_status"
    # The link's /start lists the tickets in private, as /status does.
    for text in ("/start ticket_status", "/status"):
        sent_now = await tg.say(tg.message(user, text))
        (listed,) = [c for c in sent_now if c.chat() == 610005]
        assert ticket.id in listed.params["text"]


async def test_cancel_command_stops_a_form(tg: Any) -> None:
    user = tg.person(610006, "阿力木")
    await tg.say(tg.message(user, "小区消防通道被车堵死了，我要反映"))
    state = tg.core.store.load_conversation("telegram", "610006")
    assert state and state.get("form")
    (sent,) = await tg.say(tg.message(user, "/cancel"))
    assert "取消" in sent.params["text"]
    assert not tg.core.store.load_conversation("telegram", "610006").get("form")
    assert tg.core.store.list_tickets(user_id="610006") == []
