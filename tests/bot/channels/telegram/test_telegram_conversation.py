"""Whole conversations through the webhook: a mediation asked for in a group is
finished in the private chat, the staff group gets the ticket with buttons,
and a staff press moves it and tells the resident."""

from __future__ import annotations

from typing import Any

import pytest

pytestmark = pytest.mark.anyio

RESIDENT = 222222222
GROUP_TEXT = "楼上邻居天天半夜吵，沟通没用，想找人调解"


def _answers(tg: Any) -> dict[str, str]:
    """What the resident says to each question of the mediation form."""
    r = tg.core.replies
    return {
        r.text("ask.mediation.other_party"): "楼上邻居",
        r.text("ask.mediation.place"): "幸福里小区3号楼",
        r.text("ask.mediation.description"): "每天半夜拖椅子、蹦跳，已经找过物业",
        r.text("ask.name"): "阿依古丽",
        r.text("ask.phone"): "13912345678",
        r.text("form.confirm_prompt"): "确认",
    }


async def _private_dialogue(tg: Any, first: list[Any]) -> list[str]:
    """Answer the form's questions until the bot stops asking; the bot's texts."""
    user = tg.person(RESIDENT, "阿依古丽")
    answers = _answers(tg)
    said = [c.params["text"] for c in first if c.chat() == RESIDENT]
    for _ in range(10):
        last = said[-1]
        reply = next((a for q, a in answers.items() if q in last), None)
        if reply is None:
            break
        sent = await tg.say(tg.message(user, reply))
        said += [c.params["text"] for c in sent if c.chat() == RESIDENT]
    return said


async def _group_to_private_ticket(tg: Any) -> Any:
    user = tg.person(RESIDENT, "阿依古丽")
    sent = await tg.say(tg.mention(user, GROUP_TEXT, tg.GROUP))
    (redirect,) = sent
    assert redirect.chat() == tg.GROUP["id"]
    url = redirect.params["reply_markup"]["inline_keyboard"][0][0]["url"]
    payload = url.rsplit("?start=", 1)[1]
    assert tg.core.store.list_tickets() == []

    started = await tg.say(tg.message(user, f"/start {payload}"))
    said = await _private_dialogue(tg, started)
    assert tg.core.replies.text("form.start", label="矛盾调解申请").split("，")[0] in said[0]
    # The group text is already in the form: the summary shows it without asking.
    summary = next(t for t in said if tg.core.replies.text("form.confirm_prompt") in t)
    assert GROUP_TEXT in summary
    assert not any(tg.core.replies.text("ask.mediation.description") in t for t in said)
    assert "已提交" in said[-1]
    (ticket,) = tg.core.store.list_tickets()
    assert ticket.id in said[-1]
    return ticket


async def test_group_request_continues_in_private_and_creates_one_ticket(tg: Any) -> None:
    ticket = await _group_to_private_ticket(tg)
    assert ticket.kind == "dispute_mediation"
    assert ticket.channel == "telegram"
    assert ticket.user_id == str(RESIDENT)
    assert ticket.phone == "13912345678"
    assert ticket.fields["description"] == GROUP_TEXT
    # Nothing personal was ever sent to the group.
    group_texts = tg.api.texts_to(tg.GROUP["id"])
    assert group_texts and not any("13912345678" in t or "阿依古丽" in t for t in group_texts)


async def test_deep_link_of_another_user_does_not_start_their_flow(tg: Any) -> None:
    user = tg.person(RESIDENT, "阿依古丽")
    (redirect,) = await tg.say(tg.mention(user, GROUP_TEXT, tg.GROUP))
    url = redirect.params["reply_markup"]["inline_keyboard"][0][0]["url"]
    stranger = tg.person(808080, "路人")
    sent = await tg.say(tg.message(stranger, f"/start {url.rsplit('=', 1)[1]}"))
    assert tg.core.replies.text("form.deeplink_expired") in sent[0].params["text"]


def _staff_post(tg: Any, ticket_id: str) -> Any:
    posts = [
        c
        for c in tg.api.find("sendMessage", chat_id=tg.STAFF_CHAT)
        if ticket_id in c.params["text"]
    ]
    return posts[0] if len(posts) == 1 else None


def _buttons_of(markup: dict[str, Any]) -> list[str]:
    return [row[0]["text"] for row in markup["inline_keyboard"]]


def _buttons(call: Any) -> dict[str, str]:
    return {
        row[0]["text"]: row[0]["callback_data"]
        for row in call.params["reply_markup"]["inline_keyboard"]
    }


async def test_staff_chat_gets_the_ticket_and_only_staff_can_move_it(tg: Any) -> None:
    ticket = await _group_to_private_ticket(tg)
    post = await tg.wait_for(lambda: _staff_post(tg, ticket.id))
    text = post.params["text"]
    assert "矛盾调解" in text and GROUP_TEXT in text
    assert "13912345678" not in text and "139****5678" in text
    buttons = _buttons(post)
    assert set(buttons) == {"接单", "办结"}
    staff_message = tg.sent_message(post)

    # A resident in the staff group presses 接单: refused, nothing changes.
    before_events = len(tg.core.store.ticket_events(ticket.id))
    outsider = tg.person(RESIDENT, "阿依古丽")
    await tg.say(tg.callback(outsider, buttons["接单"], staff_message))
    (refusal,) = tg.api.find("answerCallbackQuery")
    assert refusal.params["show_alert"] is True
    assert "工作人员" in refusal.params["text"]
    assert tg.core.store.get_ticket(ticket.id).status == "open"
    assert len(tg.core.store.ticket_events(ticket.id)) == before_events
    assert tg.core.store.list_outbox() == []

    # The staff member presses 接单: the ticket moves, the resident is told.
    staff = tg.person(tg.STAFF_USER, "李明")
    before = len(tg.api.texts_to(RESIDENT))
    await tg.say(tg.callback(staff, buttons["接单"], staff_message))
    moved = tg.core.store.get_ticket(ticket.id)
    assert moved.status == "assigned" and moved.assignee == "李明"
    toast = tg.api.find("answerCallbackQuery")[-1]
    assert toast.params.get("show_alert") in (None, False) and ticket.id in toast.params["text"]
    (edit,) = tg.api.find("editMessageReplyMarkup")
    assert set(_buttons(edit)) == {"已接单：李明", "办结"}
    notice = await tg.wait_for(lambda: tg.api.texts_to(RESIDENT)[before:])
    assert ticket.id in notice[0] and "李明" in notice[0]
    await tg.wait_for(lambda: tg.core.store.list_outbox(status="sent"))

    # Pressing 接单 again (a stale keyboard) changes nothing.
    await tg.say(tg.callback(staff, buttons["接单"], staff_message))
    assert tg.api.find("answerCallbackQuery")[-1].params["show_alert"] is True
    assert len(tg.core.store.list_outbox()) == 1

    # 办结 resolves it and tells the resident the outcome.
    await tg.say(tg.callback(staff, buttons["办结"], staff_message))
    assert tg.core.store.get_ticket(ticket.id).status == "resolved"
    done = await tg.wait_for(lambda: [t for t in tg.api.texts_to(RESIDENT) if "已办结" in t])
    assert ticket.id in done[0]
    final = tg.api.find("editMessageReplyMarkup")[-1].params["reply_markup"]
    assert _buttons_of(final) == ["已办结（李明）"]


async def test_faq_choice_buttons_send_the_choice_back(tg: Any) -> None:
    user = tg.person(700007, "马老师")
    choices = None
    for question in ("怎么申请", "要什么材料", "流程是什么", "法律"):
        sent = await tg.say(tg.message(user, question))
        if sent and sent[0].params.get("reply_markup"):
            choices = sent[0]
            break
    assert choices is not None, "no FAQ question produced choices"
    rows = choices.params["reply_markup"]["inline_keyboard"]
    assert len(rows) >= 2
    label, data = rows[1][0]["text"], rows[1][0]["callback_data"]
    assert label.startswith("2.")
    message = tg.sent_message(choices)

    stranger = tg.person(700008, "别人")
    assert await tg.say(tg.callback(stranger, data, message)) == []
    assert tg.api.find("answerCallbackQuery")[-1].params["show_alert"] is True

    sent = await tg.say(tg.callback(user, data, message))
    (answer,) = sent
    question = label.split(". ", 1)[1]
    match = next(m for m in tg.core.faq.search(question, 3) if m.question == question)
    assert answer.params["text"].startswith(match.answer.split("\n")[0])
    # The keyboard is gone, so the choice cannot be pressed twice.
    (edit,) = tg.api.find("editMessageReplyMarkup")
    assert edit.params.get("reply_markup") in (None, "", {"inline_keyboard": []})


async def test_tickets_of_other_channels_are_posted_and_a_stale_press_still_acts(tg: Any) -> None:
    ticket, _ = tg.core.store.create_ticket(
        kind="report_issue",
        department="街道城管中队",
        channel="wechat",
        user_id="oWx_resident",
        phone=None,
        fields={"description": "路灯坏了", "place": "幸福路口"},
    )
    post = await tg.wait_for(lambda: _staff_post(tg, ticket.id))
    assert "路灯坏了" in post.params["text"] and "wechat" in post.params["text"]
    # Telegram no longer accepts an answer to a press it delivered late.
    tg.api.fail("answerCallbackQuery", status=400, description="Bad Request: query is too old")
    staff = tg.person(tg.STAFF_USER, "李明")
    await tg.say(tg.callback(staff, _buttons(post)["接单"], tg.sent_message(post)))
    assert tg.core.store.get_ticket(ticket.id).assignee == "李明"
    # The WeChat user's notice waits for the WeChat channel, not for Telegram.
    (notice,) = tg.core.store.list_outbox()
    assert notice.channel == "wechat" and notice.status == "pending"
