"""The core's replies -> WeChat text: one passive XML reply plus follow-ups.

A passive reply carries one message, and WeChat cuts text beyond 2,048 bytes,
so the replies of a turn are joined, split at paragraph or sentence ends into
parts of at most 2,048 bytes, and parts beyond `MAX_PARTS` are trimmed with a
note. Buttons are not rendered: the core already writes the choices into the
text (WeChat text messages have no buttons).
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence

from flows.messages import Reply

MAX_TEXT_BYTES = 2048
MAX_PARTS = 5
# A split earlier than this share of the limit wastes a message; cut mid-sentence instead.
MIN_FILL = 0.5
_BREAKS = ("\n\n", "\n", "。", "！", "？", "!", "?", "；", ";", "，", ",", " ")
# Characters XML 1.0 forbids: they would make WeChat reject the whole reply.
_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")


def utf8_len(text: str) -> int:
    return len(text.encode("utf-8"))


def clean_for_xml(text: str) -> str:
    return _XML_INVALID.sub("", text)


def join_replies(replies: Sequence[Reply]) -> str:
    return "\n\n".join(r.text.strip() for r in replies if r.text.strip())


def split_text(
    text: str, *, limit: int = MAX_TEXT_BYTES, max_parts: int = MAX_PARTS, trim_note: str = "…"
) -> list[str]:
    """Parts of at most `limit` UTF-8 bytes, cut at the best break; never inside a
    character. Beyond `max_parts` the last part ends with `trim_note`."""
    rest = clean_for_xml(text).strip()
    parts: list[str] = []
    while rest:
        if utf8_len(rest) <= limit:
            parts.append(rest)
            break
        if len(parts) == max_parts - 1:
            parts.append(_trim(rest, limit, trim_note))
            break
        cut = _cut_point(rest, limit)
        parts.append(rest[:cut].rstrip())
        rest = rest[cut:].lstrip()
    return [p for p in parts if p]


def _fit(text: str, limit: int) -> int:
    """The largest character count whose UTF-8 encoding fits in `limit` bytes."""
    used = 0
    for i, ch in enumerate(text):
        used += utf8_len(ch)
        if used > limit:
            return i
    return len(text)


def _cut_point(text: str, limit: int) -> int:
    fit = _fit(text, limit)
    window = text[:fit]
    floor = _fit(text, int(limit * MIN_FILL))
    for mark in _BREAKS:
        at = window.rfind(mark)
        if at >= floor and at > 0:
            return at + len(mark)
    return max(fit, 1)


def _trim(text: str, limit: int, note: str) -> str:
    room = limit - utf8_len(note)
    cut = _cut_point(text, room)
    return text[:cut].rstrip() + note


def escape_cdata(text: str) -> str:
    """Text that can sit inside `<![CDATA[...]]>`: a `]]>` in it is split across
    two sections (wechatpy's `TextReply` inserts values verbatim)."""
    return text.replace("]]>", "]]]]><![CDATA[>")


def cdata(text: str) -> str:
    return "<![CDATA[" + escape_cdata(text) + "]]>"


def text_reply_xml(*, to_user: str, from_account: str, text: str, now: float | None = None) -> str:
    """The passive text reply, in the layout of wechatpy's `TextReply.render()`
    (built directly: this runs once per message and wechatpy's field machinery
    was a measurable share of the request's CPU)."""
    created = int(time.time() if now is None else now)
    return (
        "<xml>\n"
        "<MsgType><![CDATA[text]]></MsgType>\n"
        f"<Content>{cdata(clean_for_xml(text))}</Content>\n"
        f"<FromUserName>{cdata(from_account)}</FromUserName>\n"
        f"<ToUserName>{cdata(to_user)}</ToUserName>\n"
        f"<CreateTime>{created}</CreateTime>\n"
        "</xml>"
    )
