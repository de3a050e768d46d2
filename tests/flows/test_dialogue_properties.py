"""Random and hostile message sequences never raise, always get a reply and
leave a conversation state that loads back."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.app import Core
from flows.messages import IncomingMessage
from flows.state import ConversationState

# Messages drawn from what users really send plus arbitrary text: the
# realistic part drives the forms deep, the arbitrary part probes edges.
REALISTIC = [
    "我想申请红色信贷",
    "开了一家馕店",
    "五万",
    "金额改成八万",
    "进货",
    "我叫王芳",
    "13912345678",
    "电话写错了，是13800001111",
    "确认",
    "确认",
    "取消",
    "转人工",
    "查进度",
    "楼上邻居天天半夜吵，想调解",
    "小区路灯坏了",
    "不留",
    "调解要收费吗",
    "1",
    "2",
    "算了，我想报名志愿者",
    "11010519491231002X",
    "",
    "😀",
    "\x00\x1b[2J",
]
message = st.one_of(
    st.sampled_from(REALISTIC),
    st.text(max_size=200),
    st.text(alphabet=st.characters(codec="utf-8"), min_size=1, max_size=30),
)
kinds = st.sampled_from(["text", "text", "text", "image", "location", "voice", "sticker"])


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(turns=st.lists(st.tuples(message, kinds), min_size=1, max_size=12), user=st.integers(0, 3))
def test_random_sequences_always_get_a_reply(core: Core, turns: list, user: int) -> None:
    for text, kind in turns:
        msg = IncomingMessage(
            channel="test",
            user_id=f"p{user}",
            text=text,
            kind=kind,
            location=(43.8, 87.6) if kind == "location" else None,
            media_ref="M1" if kind == "image" else None,
        )
        replies = core.dispatcher.handle(msg)
        assert replies and all(r.text.strip() for r in replies)
        assert "系统刚才出了点问题" not in replies[-1].text  # the error net never fired
        raw = core.store.load_conversation("test", f"p{user}")
        assert raw is not None
        state = ConversationState.from_json(raw)
        if state.form is not None:
            flow = core.engine.book.flows[state.form.flow]
            assert set(state.form.slots) <= {s.name for s in flow.slots}
    for ticket in core.store.list_tickets():
        assert ticket.status == "open" and ticket.id.startswith("TX")
