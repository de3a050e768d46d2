"""The satisfaction survey as a resident lives it: staff resolve a ticket, the
question arrives on the resident's channel, and their answer, in their own
words, lands on the ticket (or, when it is no answer, goes on to the dialogue)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from bot.app import Core
from flows import staff
from flows.store import Ticket, iso, utcnow
from tests.conftest import Chat


def file_report(core: Core, user: str = "u1") -> Ticket:
    ticket, _ = core.store.create_ticket(
        kind="report_issue",
        department="网格服务站（城管、物业、消防联动）",
        channel="test",
        user_id=user,
        phone="13912345678",
        fields={"description": "3号楼路灯不亮", "place": "幸福小区"},
    )
    return ticket


def resolve(core: Core, ticket: Ticket, note: str = "路灯已修复") -> list[str]:
    """Staff resolve the ticket; returns what the resident's channel delivers."""
    staff.resolve_ticket(core.store, core.replies, ticket.id, note, "网格员")
    return [item.text for item in core.store.take_outbox_for_user("test", ticket.user_id)]


def survey(core: Core, ticket: Ticket) -> dict:
    row = core.store._one("SELECT * FROM surveys WHERE ticket_id = ?", (ticket.id,))
    assert row is not None
    return row


@pytest.mark.parametrize(
    ("answer", "label"),
    [
        ("满意", "satisfied"),
        ("基本满意", "neutral"),
        ("不满意", "unsatisfied"),
        ("1", "satisfied"),
        ("2", "neutral"),
        ("３", "unsatisfied"),  # a full-width digit from a Chinese keyboard
        ("挺好的", "satisfied"),
        ("还行", "neutral"),
        ("没解决", "unsatisfied"),
        ("呵呵满意得很", "unsatisfied"),
    ],
)
def test_each_answer_form_is_stored_on_the_ticket(
    chat: Chat, core: Core, answer: str, label: str
) -> None:
    ticket = file_report(core)
    delivered = resolve(core, ticket)
    assert "路灯已修复" in delivered[0] and "满意吗" in delivered[1] and ticket.id in delivered[1]
    reply = chat.say(answer)
    stored = core.store.get_ticket(ticket.id)
    assert stored.satisfaction == label
    assert stored.to_dict()["satisfaction"] == label
    if label == "unsatisfied":
        assert "重新交给承办部门" in reply and stored.status == "in_progress"
    else:
        assert "感谢您的评价" in reply and stored.status == "resolved"


def test_an_unsatisfied_answer_keeps_its_comment_and_reopens_the_ticket(
    chat: Chat, core: Core
) -> None:
    ticket = file_report(core)
    resolve(core, ticket)
    chat.say("不满意，路灯还是不亮，晚上黑漆漆的")
    stored = core.store.get_ticket(ticket.id)
    assert stored.status == "in_progress" and stored.resolved_at is None
    assert stored.satisfaction_comment == "不满意，路灯还是不亮，晚上黑漆漆的"
    reopen = [e for e in core.store.ticket_events(ticket.id) if e.to_status == "in_progress"]
    assert len(reopen) == 1 and "路灯还是不亮" in (reopen[0].note or "")


def test_a_new_request_instead_of_an_answer_goes_on_to_the_dialogue(chat: Chat, core: Core) -> None:
    ticket = file_report(core)
    resolve(core, ticket)
    reply = chat.say("另外楼下的井盖丢了，很危险")
    assert "感谢您的评价" not in reply
    assert core.store.get_ticket(ticket.id).satisfaction is None
    assert survey(core, ticket)["status"] == "skipped"
    # Asked once: a later "满意" is no survey answer any more.
    chat.say("取消")
    chat.say("满意")
    assert core.store.get_ticket(ticket.id).satisfaction is None


def test_no_answer_in_time_is_not_asked_again(chat: Chat, core: Core) -> None:
    ticket = file_report(core)
    resolve(core, ticket)
    four_days_ago = iso(utcnow() - timedelta(days=4))
    core.store._exec(
        "UPDATE surveys SET asked_at = ? WHERE ticket_id = ?", (four_days_ago, ticket.id)
    )
    reply = chat.say("满意")
    assert "感谢您的评价" not in reply
    assert core.store.get_ticket(ticket.id).satisfaction is None
    assert survey(core, ticket)["status"] == "expired"
    assert "满意吗" not in chat.say("你好")


def test_the_survey_waits_for_the_form_the_resident_is_filling_in(chat: Chat, core: Core) -> None:
    ticket = file_report(core)
    chat.say("我想申请调解")
    state = core.store.load_conversation("test", "u1")
    assert state is not None and state["form"] is not None
    delivered = resolve(core, ticket)
    assert len(delivered) == 1 and "满意吗" not in delivered[0]  # only the outcome
    assert survey(core, ticket)["status"] == "pending"
    # The form's turns are not interrupted; the question follows its end.
    during = chat.say("楼上邻居天天半夜吵")
    assert "满意吗" not in during
    assert "确定要取消吗" in chat.say("算了，不申请了")
    assert "满意吗" not in chat.history[-1][-1].text
    ended = chat.say("是")
    assert "已取消" in ended and "满意吗" in ended and ticket.id in ended
    assert core.store.get_ticket(ticket.id).satisfaction is None
    assert "感谢您的评价" in chat.say("1")
    assert core.store.get_ticket(ticket.id).satisfaction == "satisfied"


def test_unsatisfied_twice_goes_to_an_admin_instead_of_looping(chat: Chat, core: Core) -> None:
    ticket = file_report(core)
    resolve(core, ticket)
    assert "重新交给承办部门" in chat.say("不满意")
    assert core.store.get_ticket(ticket.id).status == "in_progress"
    delivered = resolve(core, ticket, "已更换灯泡")
    assert "满意吗" in delivered[-1]
    reply = chat.say("还是没解决")
    assert "督办" in reply
    stored = core.store.get_ticket(ticket.id)
    assert stored.status == "resolved"  # not reopened a second time
    assert stored.escalated_at is not None and stored.satisfaction == "unsatisfied"
    actions = [e.action for e in core.store.ticket_events(ticket.id)]
    assert actions.count("escalated") == 1
    reopened = [e for e in core.store.ticket_events(ticket.id) if e.from_status == "resolved"]
    assert len(reopened) == 1
