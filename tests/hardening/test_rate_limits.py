"""One user cannot flood everyone: per-user limits on messages (30 at once, then
60 a minute by default) and on new tickets (5 an hour), with a polite reply
when hit, on the public channels."""

from __future__ import annotations

import itertools

from bot.app import Core
from flows.messages import IncomingMessage

_ids = itertools.count(1)


def _say(core: Core, user: str, text: str) -> str:
    msg = IncomingMessage(channel="wechat", user_id=user, text=text, message_id=str(next(_ids)))
    return "\n".join(r.text for r in core.dispatcher.handle(msg))


def test_a_flooding_user_is_slowed_and_told_once_while_others_are_served(core: Core) -> None:
    # The flood arrives within one instant: on a slow machine 30 turns take over
    # a second, and the bucket would refill one message meanwhile.
    assert core.dispatcher.rate_limiter is not None
    core.dispatcher.rate_limiter.clock = lambda: 1000.0
    answers = [_say(core, "oFlood", f"红色信贷利率多少{i}") for i in range(100)]
    served = [a for a in answers if "利率" in a]
    told = [a for a in answers if "太快" in a]
    assert len(served) == 30 and len(told) == 1
    assert answers[31:] == [""] * 69  # no reply flood either
    logged = [m for m in core.store.message_log("wechat", "oFlood") if m["direction"] == "in"]
    assert len(logged) == 30  # refused messages cost no turn
    assert "利率" in _say(core, "oCalm", "红色信贷利率多少")


def test_new_tickets_per_user_are_limited_per_hour(core: Core) -> None:
    replies = []
    for i in range(6):
        _say(core, "oTickets", f"我要反映问题，{i}号路灯坏了")
        _say(core, "oTickets", "幸福路7号楼")
        _say(core, "oTickets", "不留")
        replies.append(_say(core, "oTickets", "确认"))
    assert all("已提交" in r for r in replies[:5])
    assert "5件" in replies[5] and "已提交" not in replies[5]
    assert len(core.store.list_tickets(user_id="oTickets")) == 5
    # Other users still file theirs.
    _say(core, "oOther", "我要反映问题，路灯坏了")
    _say(core, "oOther", "幸福路7号楼")
    _say(core, "oOther", "不留")
    assert "已提交" in _say(core, "oOther", "确认")
