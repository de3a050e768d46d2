"""Properties of form turns over random sequences of realistic replies: a
filled essential detail is never lost while its form lives, nothing is filed
without a confirmation, and no dialogue act is ever stored as a value."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.app import Core
from flows.messages import IncomingMessage
from flows.state import ConversationState

OPENINGS = [
    "我想申请红色信贷",
    "楼上邻居天天半夜吵，想申请调解",
    "我想报名当志愿者",
    "老板拖欠工资，想找律师咨询",
    "小区门口的路灯坏了",
]
# Replies that give or ask something but never say "yes, file it".
REPLIES = [
    "开了一家烤肉店",
    "八万",
    "想贷十二万",
    "进货",
    "我叫张建国",
    "我姓黄",
    "叫我刘阿姨",
    "13912345678",
    "电话 138 0013 8000",
    "电话写错了，是13800001111",
    "金额改成六万",
    "在幸福路18号",
    "就在小区门口",
    "具体是光明街3号楼2单元",
    "隔壁卖菜的老板",
    "他家狗天天半夜叫，说了也不听",
    "会理发",
    "周末上午",
    "利息多少",
    "调解要收费吗",
    "你们会派人来看吗？",
    "为什么要电话",
    "你好",
    "谢谢",
    "稍等一下",
    "不知道",
    "不留",
    "不方便说",
    "哈哈",
    "不对",
]
DIALOGUE_ACTS = {"你好", "谢谢", "稍等一下", "不知道", "不留", "不方便说", "哈哈", "不对"}
CONFIRMATIONS = ("确认", "对", "好的", "提交", "没问题", "可以", "行", "嗯", "是")

turns = st.lists(st.sampled_from(REPLIES), min_size=1, max_size=10)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(opening=st.sampled_from(OPENINGS), replies=turns, user=st.integers(0, 10**6))
def test_random_form_turns_keep_essentials_file_nothing_and_store_no_dialogue_act(
    core: Core, opening: str, replies: list[str], user: int
) -> None:
    uid = f"prop{user}"
    core.dispatcher.handle(IncomingMessage(channel="test", user_id=uid, text=opening))
    held: dict[str, object] = {}  # essential values seen in the current form
    form_id = None
    for text in replies:
        core.dispatcher.handle(IncomingMessage(channel="test", user_id=uid, text=text))
        state = ConversationState.from_json(core.store.load_conversation("test", uid))
        form = state.form
        if form is None or form.form_id != form_id:
            held, form_id = {}, form.form_id if form is not None else None
        if form is None:
            continue
        flow = core.engine.book.flows[form.flow]
        for slot in flow.essentials:
            if slot.name in held:
                assert form.slots.get(slot.name), f"{slot.name} lost after {text!r}"
            if form.slots.get(slot.name):
                held[slot.name] = form.slots[slot.name]
        for name, value in form.slots.items():
            assert str(value) not in DIALOGUE_ACTS, f"{name} = {value!r}"
            assert str(value) not in CONFIRMATIONS, f"{name} = {value!r}"
    # None of the replies confirms, so nothing may have been filed.
    assert core.store.list_tickets(user_id=uid) == []
    assert core.store.list_volunteers(user_id=uid) == []
