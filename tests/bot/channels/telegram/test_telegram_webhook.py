"""POST /telegram with recorded Update JSON: the secret check, private and
group messages, non-text, edits, redeliveries and forged buttons."""

from __future__ import annotations

import json
from typing import Any

import pytest

pytestmark = pytest.mark.anyio


def _in_log(tg: Any, user_id: int, chat_id: int | None = None) -> list[dict[str, Any]]:
    key = str(user_id) if chat_id is None else f"{user_id}@{chat_id}"
    return [r for r in tg.core.store.message_log("telegram", key) if r["direction"] == "in"]


async def test_wrong_or_missing_secret_is_refused(tg: Any) -> None:
    update = tg.fixture("private_text")
    for secret in (None, "", "test-secret_4f9b", tg.SECRET + "x", "测试".encode()):
        response = await tg.post(update, secret=secret)
        assert response.status_code == 403
    await tg.channel.drain()
    assert tg.api.find("sendMessage") == []
    assert _in_log(tg, 111111111) == []


async def test_body_that_is_not_an_update_is_rejected(tg: Any) -> None:
    headers = {"X-Telegram-Bot-Api-Secret-Token": tg.SECRET}
    for body in (b"not json", b"[1, 2]", b'{"message": {}}', json.dumps({"update_id": "x"})):
        response = await tg.client.post("/telegram", content=body, headers=headers)
        assert response.status_code == 400
    big = b'{"update_id": 1, "pad": "' + b"x" * (1 << 20) + b'"}'
    response = await tg.client.post("/telegram", content=big, headers=headers)
    assert response.status_code == 413


async def test_private_text_is_answered_with_send_message(tg: Any) -> None:
    sent = await tg.say(tg.fixture("private_text"))
    assert len(sent) == 1
    assert sent[0].chat() == 111111111
    assert "同心" in sent[0].params["text"]
    assert "reply_parameters" not in sent[0].params  # no quoting in a private chat
    assert len(_in_log(tg, 111111111)) == 1


async def test_group_chatter_without_mention_is_ignored(tg: Any) -> None:
    sent = await tg.say(tg.fixture("group_text"))
    assert sent == []
    assert _in_log(tg, 222222222, tg.GROUP["id"]) == []
    joined = await tg.say(tg.fixture("group_join"))
    assert joined == []


async def test_group_mention_for_mediation_answers_with_deep_link_only(tg: Any) -> None:
    sent = await tg.say(tg.fixture("group_mention"))
    assert len(sent) == 1
    call = sent[0]
    assert call.chat() == tg.GROUP["id"]
    assert call.params["reply_parameters"]["message_id"] == 502
    (row,) = call.params["reply_markup"]["inline_keyboard"]
    url = row[0]["url"]
    assert url.startswith(f"https://t.me/{tg.BOT['username']}?start=")
    # Nothing personal is asked for in the group.
    assert "电话" not in call.params["text"] or "私聊" in call.params["text"]
    assert tg.core.store.list_tickets() == []
    logged = _in_log(tg, 222222222, tg.GROUP["id"])
    assert [r["text"] for r in logged] == ["楼上邻居天天半夜吵，沟通没用，想找人调解"]


async def test_reply_to_the_bot_in_a_group_is_answered_in_the_group(tg: Any) -> None:
    sent = await tg.say(tg.fixture("group_reply_to_bot"))
    assert len(sent) == 1
    assert sent[0].chat() == tg.GROUP["id"]
    assert sent[0].params["reply_parameters"]["message_id"] == 504


async def test_reply_to_another_member_is_ignored(tg: Any) -> None:
    update = tg.fixture("group_reply_to_bot")
    other = {"id": 999, "is_bot": False, "first_name": "老马"}
    update["message"]["reply_to_message"]["from"] = other
    assert await tg.say(update) == []


async def test_sticker_gets_a_polite_reply(tg: Any) -> None:
    sent = await tg.say(tg.fixture("sticker"))
    assert len(sent) == 1
    text = sent[0].params["text"]
    assert "表情" in text and "文字" in text


async def test_photo_outside_a_report_gets_a_polite_reply(tg: Any) -> None:
    sent = await tg.say(tg.fixture("photo"))
    assert len(sent) == 1
    assert "图片" in sent[0].params["text"]


async def test_edited_message_does_not_rerun_a_flow(tg: Any) -> None:
    await tg.say(tg.fixture("private_text"))
    sent = await tg.say(tg.fixture("edited_message"))
    assert len(sent) == 1
    assert "修改" in sent[0].params["text"]
    # Still only the original message went through the dialogue.
    assert [r["text"] for r in _in_log(tg, 111111111)] == ["你好"]
    assert tg.core.store.list_tickets() == []


async def test_edited_message_in_a_group_is_ignored(tg: Any) -> None:
    update = tg.fixture("edited_message")
    update["edited_message"]["chat"] = tg.GROUP
    assert await tg.say(update) == []


async def test_the_200_comes_after_the_update_was_handled(tg: Any) -> None:
    """Telegram re-sends an update until it gets a 200: answering only once the
    reply went out means an update in flight when the process dies is re-sent,
    not lost."""
    user = tg.person(600002, "小周")
    before = len(tg.api.find("sendMessage"))
    response = await tg.post(tg.message(user, "你好"))  # no drain: nothing is left queued
    assert response.status_code == 200
    sent = [c for c in tg.api.find("sendMessage")[before:] if c.chat() == 600002]
    assert len(sent) == 1 and "同心" in sent[0].params["text"]
    assert len(_in_log(tg, 600002)) == 1


async def test_redelivered_update_is_handled_once(tg: Any) -> None:
    user = tg.person(600001, "小李")
    update = tg.message(user, "我要转人工")
    first = [c.params["text"] for c in await tg.say(update) if c.chat() == 600001]
    again = [c.params["text"] for c in await tg.say(update) if c.chat() == 600001]
    # Handled once and answered once: the redelivery sends nothing more.
    assert "转接人工" in first[0] and again == []
    tickets = tg.core.store.list_tickets(user_id="600001")
    assert len(tickets) == 1 and tickets[0].kind == "human_handoff"
    assert len(_in_log(tg, 600001)) == 1


async def test_forged_callback_data_is_refused_with_an_alert(tg: Any) -> None:
    update = tg.fixture("callback_query")  # its signature is made up
    sent = await tg.say(update)
    assert sent == []
    (answer,) = tg.api.find("answerCallbackQuery")
    assert answer.params["callback_query_id"] == "4382bfdwdsb323b2d9"
    assert answer.params["show_alert"] is True
    assert _in_log(tg, 111111111) == []
    for data in ("", "1", "r:111111111:1", "s:t:TX000000-0001:" + "A" * 16, "x" * 64):
        update["callback_query"]["data"] = data
        update["update_id"] += 1
        assert await tg.say(update) == []
    assert all(a.params["show_alert"] is True for a in tg.api.find("answerCallbackQuery"))
    assert tg.api.find("editMessageReplyMarkup") == []
