"""Plain mode signs only the URL: a captured callback URL must not carry another
body (another user's "delete my data", a ticket query), while WeChat's own retry
of the very same request still gets its reply."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.anyio

USER = "oReplayUser000000000000000001"
VICTIM = "oReplayVictim0000000000000001"


async def test_a_captured_url_cannot_carry_another_body(kit_factory) -> None:
    async with kit_factory(mode="plain") as kit:
        query, body = kit.wechat.signed(kit.wechat.text_xml(USER, "你好"))
        first = await kit.wechat.post(query, body)
        assert first.status == 200 and first.text

        forged = kit.wechat.text_xml(VICTIM, "删除我的信息").encode()
        refused = await kit.wechat.post(query, forged)
        assert refused.status == 403 and refused.text is None

        again = await kit.wechat.post(query, body)  # WeChat's retry, byte for byte
        assert again.status == 200 and again.text == first.text
        assert kit.core.store.message_log("wechat", VICTIM) == []


async def test_safe_mode_reads_no_body_without_a_url_signature(kit_factory) -> None:
    async with kit_factory(mode="safe") as kit:
        query, _ = kit.wechat.signed(kit.wechat.text_xml(USER, "你好"))
        del query["signature"]
        huge = b"<xml>" + b"x" * 200_000 + b"</xml>"
        answer = await kit.wechat.post(query, huge)
        assert answer.status == 403  # refused on the URL, not 413 after reading the body
