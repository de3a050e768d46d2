"""Translation of recorded updates, the group rule, rendering and signed
callback data, without a server."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest
from telegram import Bot, Update

from bot.channels.telegram.callbacks import (
    AnswerPress,
    CallbackDataError,
    CallbackSigner,
    StaffPress,
)
from bot.channels.telegram.render import render_reply, trim_text, utf16_len
from bot.channels.telegram.translate import (
    BotIdentity,
    addressed_to_bot,
    command_addressed_to_bot,
    command_argument,
    start_payload,
    to_incoming,
)
from flows.messages import Button, Reply

ME = BotIdentity(7000000001, "tongxin_test_bot")
TOKEN = "7000000001:AAEfakeTokenForTestsOnly_xyz"

Fixture = Callable[[str], dict[str, Any]]


def _message(data: dict[str, Any]) -> Any:
    update = Update.de_json(data, Bot(TOKEN))
    message = update.message or update.edited_message
    assert message is not None
    return message


def test_private_text(telegram_fixture: Fixture) -> None:
    msg = to_incoming(_message(telegram_fixture("private_text")), ME)
    assert msg is not None
    assert (msg.channel, msg.user_id, msg.text, msg.kind) == (
        "telegram",
        "111111111",
        "你好",
        "text",
    )
    assert msg.message_id == "111111111:11" and msg.chat_id == "111111111"
    assert not msg.in_group and msg.display_name == "王芳"


def test_group_rule(telegram_fixture: Fixture) -> None:
    assert not addressed_to_bot(_message(telegram_fixture("group_text")), ME)
    assert addressed_to_bot(_message(telegram_fixture("group_mention")), ME)
    assert addressed_to_bot(_message(telegram_fixture("group_reply_to_bot")), ME)
    assert addressed_to_bot(_message(telegram_fixture("private_text")), ME)


def test_mention_of_another_bot_or_a_text_mention(telegram_fixture: Fixture) -> None:
    data = telegram_fixture("group_mention")
    other = copy.deepcopy(data)
    other["message"]["text"] = other["message"]["text"].replace(
        "tongxin_test_bot", "other_helper_bot"
    )
    assert not addressed_to_bot(_message(other), ME)
    text_mention = copy.deepcopy(data)
    text_mention["message"]["text"] = "同心 帮我看看"
    text_mention["message"]["entities"] = [
        {
            "offset": 0,
            "length": 2,
            "type": "text_mention",
            "user": {"id": ME.id, "is_bot": True, "first_name": "同心"},
        }
    ]
    assert addressed_to_bot(_message(text_mention), ME)


def test_mention_is_stripped_from_group_text(telegram_fixture: Fixture) -> None:
    data = telegram_fixture("group_mention")
    data["message"]["text"] = "楼上太吵了 @TongXin_Test_Bot ，帮帮忙"
    data["message"]["entities"] = [{"offset": 6, "length": 17, "type": "mention"}]
    message = _message(data)
    assert addressed_to_bot(message, ME)
    msg = to_incoming(message, ME)
    assert msg is not None and msg.in_group and msg.chat_id == "-1001234567890"
    assert msg.text == "楼上太吵了 ，帮帮忙"


def test_emoji_before_the_mention_uses_utf16_offsets(telegram_fixture: Fixture) -> None:
    data = telegram_fixture("group_mention")
    data["message"]["text"] = "👍👍 @tongxin_test_bot 你好"
    data["message"]["entities"] = [{"offset": 5, "length": 17, "type": "mention"}]
    assert addressed_to_bot(_message(data), ME)


def test_non_text_kinds(telegram_fixture: Fixture) -> None:
    sticker = to_incoming(_message(telegram_fixture("sticker")), ME)
    assert sticker is not None and sticker.kind == "sticker" and sticker.text == ""
    photo = to_incoming(_message(telegram_fixture("photo")), ME)
    assert photo is not None and photo.kind == "image"
    assert photo.media_ref == "telegram:AgACAgUAAxkBAAMPZ0large"
    assert to_incoming(_message(telegram_fixture("group_join")), ME) is None


def test_commands(telegram_fixture: Fixture) -> None:
    start = _message(telegram_fixture("command_start_payload"))
    assert command_argument(start) == "V2da6RC6k4kB9w-Y"
    assert start_payload(command_argument(start)) == "V2da6RC6k4kB9w-Y"
    assert start_payload("") is None
    assert start_payload("bad payload!") is None
    assert start_payload("x" * 65) is None
    data = telegram_fixture("group_text")
    data["message"]["text"] = "/faq@tongxin_test_bot 调解 收费吗"
    data["message"]["entities"] = [{"offset": 0, "length": 21, "type": "bot_command"}]
    faq = _message(data)
    assert command_argument(faq) == "调解 收费吗"
    assert command_addressed_to_bot(faq, ME)
    data["message"]["text"] = "/faq 调解"
    data["message"]["entities"] = [{"offset": 0, "length": 4, "type": "bot_command"}]
    assert not command_addressed_to_bot(_message(data), ME)


def test_trim_counts_utf16_units() -> None:
    assert trim_text("短消息") == "短消息"
    long = "进" * 5000
    cut = trim_text(long)
    assert utf16_len(cut) == 4096 and cut.endswith("…")
    emoji = "😀" * 3000  # 2 units each
    cut = trim_text(emoji)
    assert utf16_len(cut) <= 4096 and cut.endswith("…")
    exact = "a" * 4096
    assert trim_text(exact) == exact


def test_render_buttons_and_deep_link() -> None:
    signer = CallbackSigner(TOKEN)
    choices = Reply(
        "您问的可能是下面哪一个？",
        buttons=(Button("1. 调解收费吗", "1"), Button("2. " + "很长的问题" * 20, "2")),
    )
    rendered = render_reply(choices, me=ME, signer=signer, user_id=42, private_label="私聊办理")
    assert rendered is not None and rendered.markup is not None
    rows = rendered.markup.inline_keyboard
    assert [signer.open(r[0].callback_data) for r in rows] == [
        AnswerPress(42, "1"),
        AnswerPress(42, "2"),
    ]
    assert len(rows[1][0].text) <= 64

    redirect = Reply(
        "请到私聊办理", buttons=(Button("私聊办理", "/start tok_123"),), private_payload="tok_123"
    )
    rendered = render_reply(redirect, me=ME, signer=signer, user_id=42, private_label="私聊")
    assert rendered is not None and rendered.markup is not None
    ((button,),) = rendered.markup.inline_keyboard
    assert button.url == "https://t.me/tongxin_test_bot?start=tok_123" and button.text == "私聊办理"
    assert render_reply(Reply("  "), me=ME, signer=signer, user_id=1, private_label="x") is None


def test_callback_data_is_signed_and_fits() -> None:
    signer = CallbackSigner(TOKEN)
    data = signer.answer(2**52, "3")
    assert data is not None and len(data.encode()) <= 64
    assert signer.open(data) == AnswerPress(2**52, "3")
    staff = signer.staff("t", "TX261126-0042")
    assert staff is not None and signer.open(staff) == StaffPress("t", "TX261126-0042")
    forged = [
        data[:-1] + ("A" if data[-1] != "A" else "B"),
        data.replace(":3:", ":1:"),
        CallbackSigner("another:token").answer(1, "1"),
        "s:t:TX261126-0042:" + "A" * 16,
        None,
        "",
    ]
    for bad in forged:
        with pytest.raises(CallbackDataError):
            signer.open(bad)
    assert signer.answer(1, "申请") is None  # outside the whitelist: no button
    assert signer.staff("x", "TX1") is None
