"""Each class of form-turn failure found in blind-written conversations, with
examples written for these tests (not taken from any evaluation set), through
the collecting channel: what the user sees and what the ticket holds."""

from __future__ import annotations

from bot.app import Core
from flows.state import ConversationState
from tests.conftest import Chat


def form_of(chat: Chat) -> ConversationState:
    return ConversationState.from_json(chat.core.store.load_conversation("test", chat.user_id))


def only_ticket(core: Core, kind: str):  # type: ignore[no-untyped-def]
    [ticket] = core.store.list_tickets(kind=kind)
    return ticket


# 1. A nice-to-have slot never blocks the request.


def test_a_confirmation_at_a_nice_to_have_question_files_the_signup(chat: Chat) -> None:
    chat.say("我想报名志愿者，会修电脑")
    chat.say("我叫何文，电话13700002222")
    reply = chat.say("好的，提交吧")
    assert "报名成功" in reply
    [volunteer] = chat.core.store.list_volunteers()
    assert volunteer.phone == "13700002222" and "修电脑" in (volunteer.team or "")
    assert volunteer.availability is None


def test_a_loan_is_filed_without_its_purpose(chat: Chat) -> None:
    chat.say("我开烤鸭店，想贷款四万")
    chat.say("我叫钱明，手机15900003333")
    assert "已提交" in chat.say("确认")
    ticket = only_ticket(chat.core, "microloan")
    assert ticket.fields["amount"] == 40000 and "purpose" not in ticket.fields


def test_a_missing_essential_is_asked_for_by_name(chat: Chat) -> None:
    chat.say("我想申请红色信贷")
    reply = chat.say("没别的了，提交吧")
    assert "还需要您的申请金额" in reply
    assert chat.core.store.list_tickets() == []


# 2. Dialogue acts and questions are never stored as values.


def test_dialogue_acts_and_questions_are_not_values(chat: Chat) -> None:
    chat.say("有人在楼道里飞线充电")
    question = "你们会派人来拍照吗？"
    reply = chat.say(question)
    assert "位置" in reply  # the question is answered or declined, then the place asked again
    chat.say("长乐路7号3单元")
    chat.say("好好好")
    chat.say("不留")
    chat.say("确认")
    ticket = only_ticket(chat.core, "report_issue")
    assert ticket.fields["place"] == "长乐路7号3单元"
    assert not any(question in str(v) or v == "好好好" for v in ticket.fields.values())


def test_a_filler_reply_to_the_name_question_is_no_name(chat: Chat) -> None:
    chat.say("我想申请调解，隔壁店老板占了我的摊位")
    chat.say("在北门市场")
    for filler in ("好好好", "嗯嗯"):
        chat.say(filler)
        assert form_of(chat).form.slots.get("name") != filler  # type: ignore[union-attr]


# 3. Later, better answers replace earlier ones.


def test_an_exact_place_replaces_a_vague_one(chat: Chat) -> None:
    chat.say("菜场门口的垃圾堆了好几天了")
    chat.say("具体在向阳路菜场南门")
    chat.say("不留电话")
    chat.say("确认")
    assert only_ticket(chat.core, "report_issue").fields["place"] == "向阳路菜场南门"


def test_the_description_can_be_corrected(chat: Chat) -> None:
    chat.say("我要反映问题，路灯不亮")
    chat.say("在文化路和新华街路口")
    chat.say("不留")
    chat.say("情况写错了，应该是红绿灯坏了")
    chat.say("确认")
    assert "红绿灯坏了" in only_ticket(chat.core, "report_issue").fields["description"]


def test_a_declined_phone_can_be_given_after_all(chat: Chat) -> None:
    chat.say("楼道里堆满了纸箱，着火了跑不出去")
    chat.say("在明月小区5栋")
    assert "不留也可以" in chat.say("不留")
    chat.say("算了还是留个电话吧 13912340000")
    chat.say("确认")
    assert only_ticket(chat.core, "report_issue").phone == "13912340000"


# 4. Answers go to the slot they fit, not to the one asked last.


def test_answers_go_where_they_fit(chat: Chat) -> None:
    chat.say("我想申请调解")
    chat.say("他家装修天天早上七点就开始砸墙，说了好几次也不听")  # asked: the other side
    chat.say("我姓黄，在红旗小区")  # asked: the place
    state = form_of(chat).form
    assert state is not None
    assert "砸墙" in state.slots["description"]
    assert state.slots["name"] == "黄先生/女士" and state.slots["place"] == "红旗小区"
    chat.say("电话是我儿子的 13800001111")
    assert form_of(chat).form.slots["phone"] == "13800001111"  # type: ignore[union-attr]


# 5. Routing in the middle of a form.


def test_a_name_with_a_title_is_no_request_for_a_person(chat: Chat) -> None:
    chat.say("我想报名当志愿者，会修水管")
    reply = chat.say("叫我陈工")
    assert "人工" not in reply
    assert form_of(chat).form.slots["name"] == "陈工"  # type: ignore[union-attr]


def test_cancel_is_confirmed_and_a_switch_puts_the_form_aside(chat: Chat) -> None:
    chat.say("我想报名志愿者，会理发")
    chat.say("我叫孙丽")
    reply = chat.say("先不说这个了，贷款怎么申请？我想办一笔")
    assert "放一放" in reply
    assert form_of(chat).form.flow == "microloan"  # type: ignore[union-attr]
    chat.say("开了个面馆")
    assert "确定要取消吗" in chat.say("不办了")  # something is filled in: asked first
    chat.say("是")
    assert form_of(chat).form is None
    reply = chat.say("刚才那个报名接着弄")
    state = form_of(chat).form
    assert state is not None and state.flow == "volunteer_signup"
    assert state.slots["name"] == "孙丽" and "继续" in reply


def test_a_phone_given_earlier_is_offered_and_reused(chat: Chat) -> None:
    chat.say("我叫马强，电话13600001234，楼上漏水，想申请调解")
    chat.say("楼上住户")
    chat.say("幸福里3号楼")
    chat.say("确认")
    chat.say("我还想报名志愿者，会修电器")
    reply = chat.say("用刚才那个号")
    state = form_of(chat).form
    assert state is not None and state.slots["phone"] == "13600001234", reply


# 6. Names and numbers.


def test_name_forms(chat: Chat) -> None:
    chat.say("我想找律师咨询一下离婚的事")
    chat.say("我是退休教师")
    assert "name" not in form_of(chat).form.slots  # type: ignore[union-attr]
    chat.say("我姓吴，叫吴秀兰")
    assert form_of(chat).form.slots["name"] == "吴秀兰"  # type: ignore[union-attr]


def test_a_phone_label_is_no_name_and_chinese_digits_are_a_phone(chat: Chat) -> None:
    chat.say("我想找律师咨询，合同被骗了")
    chat.say("手機 一三九零零一二三四五六")
    state = form_of(chat).form
    assert state is not None and state.slots.get("phone") == "13900123456"
    assert state.slots.get("name") is None


def test_fifteen_ten_thousand_is_150000(chat: Chat) -> None:
    chat.say("开干果店，想贷十五万")
    assert form_of(chat).form.slots["amount"] == 150000  # type: ignore[union-attr]


def test_a_bare_phone_starts_no_loan(chat: Chat) -> None:
    chat.say("13912345678")
    assert form_of(chat).form is None


# 7. What was said before the form is kept.


def test_idle_turns_prefill_the_form_that_follows(chat: Chat) -> None:
    chat.say("我在夜市摆了个烧烤摊，生意还行")
    reply = chat.say("我想申请红色信贷")
    state = form_of(chat).form
    assert state is not None and "烧烤摊" in state.slots.get("business", "")
    assert "什么生意" not in reply


def test_accepting_an_offer_in_own_words_starts_the_form(chat: Chat) -> None:
    chat.say("红色信贷利息多少")
    chat.say("嗯那我申请试试")
    state = form_of(chat).form
    assert state is not None and state.flow == "microloan"


# 8. Menus and choices.


def test_a_number_answers_the_welcome_menu(chat: Chat) -> None:
    chat.say("你好")
    chat.say("3")
    state = form_of(chat).form
    assert state is not None and state.flow == "dispute_mediation"


def test_a_chinese_number_answers_the_menu(chat: Chat) -> None:
    chat.say("你好")
    chat.say("第二个")
    state = form_of(chat).form
    assert state is not None and state.flow == "microloan"


# 9. "Just asking".


def test_just_asking_gets_an_answer_and_no_form(chat: Chat) -> None:
    chat.say("不要预约 就问问，法律援助谁能申请")
    assert form_of(chat).form is None
    chat.say("我想咨询律师")
    reply = chat.say("算了不用预约，我就问问离婚要不要去法院")
    assert form_of(chat).form is None, reply
