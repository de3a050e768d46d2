"""WeChat message fields -> the core's `IncomingMessage`.

Field names are WeChat's (wechatpy's `messages`/`events` modules read the same
ones). Anything the dialogue cannot use (VIEW clicks, template-send reports,
periodic location reports) becomes `None`: acknowledged, not dispatched.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from bot.channels.wechat.security import RequestRejectedError
from flows.messages import IncomingMessage, MessageKind

CHANNEL = "wechat"
# OpenIDs are 28 characters; anything much longer is not from WeChat.
MAX_ID_CHARS = 64
MAX_MEDIA_REF_CHARS = 500

_MEDIA_KINDS: dict[str, MessageKind] = {
    "image": "image",
    "video": "video",
    "shortvideo": "video",
    "link": "link",
    "file": "file",
}


class BadMessageError(RequestRejectedError):
    status = 400


@dataclass(frozen=True)
class Parties:
    """Who the reply goes to and from (WeChat swaps the two names)."""

    user: str  # FromUserName: the user's OpenID
    account: str  # ToUserName: the official account's original id


def parties_of(fields: dict[str, str]) -> Parties:
    user = fields.get("FromUserName", "")
    account = fields.get("ToUserName", "")
    if not user or not account or len(user) > MAX_ID_CHARS or len(account) > MAX_ID_CHARS:
        raise BadMessageError("missing or oversized FromUserName/ToUserName")
    if not fields.get("MsgType"):
        raise BadMessageError("missing MsgType")
    return Parties(user=user, account=account)


def translate(fields: dict[str, str]) -> IncomingMessage | None:
    env = parties_of(fields)
    msg_type = fields["MsgType"].lower()

    def message(kind: MessageKind, **kwargs: object) -> IncomingMessage:
        return IncomingMessage(
            channel=CHANNEL,
            user_id=env.user,
            kind=kind,
            message_id=_message_id(fields, env),
            **kwargs,  # type: ignore[arg-type]
        )

    if msg_type == "text":
        return message("text", text=fields.get("Content", ""))
    if msg_type == "voice":
        recognised = fields.get("Recognition", "").strip()
        return message("text", text=recognised) if recognised else message("voice")
    if msg_type == "location":
        return message(
            "location",
            location=_coordinates(fields.get("Location_X"), fields.get("Location_Y")),
            location_label=fields.get("Label") or None,
        )
    if msg_type in _MEDIA_KINDS:
        # The MediaId first: media/get downloads it (a PicUrl may not stay reachable).
        ref = fields.get("MediaId") or fields.get("PicUrl") or fields.get("Url") or None
        return message(_MEDIA_KINDS[msg_type], media_ref=ref[:MAX_MEDIA_REF_CHARS] if ref else None)
    if msg_type == "event":
        event = fields.get("Event", "").lower()
        if event == "subscribe":
            return message("event", event="subscribe", event_key=fields.get("EventKey") or None)
        if event == "unsubscribe":
            return message("event", event="unsubscribe")
        if event == "click" and fields.get("EventKey"):
            return message("event", event="menu", event_key=fields["EventKey"])
        return None  # VIEW, SCAN, LOCATION reports, job reports: nothing to say
    return message("other")


def _message_id(fields: dict[str, str], env: Parties) -> str:
    """WeChat's advice: MsgId for messages, FromUserName + CreateTime for events.
    The event name and key are added so that two different clicks in the same
    second stay two messages; a retry repeats all of them."""
    msg_id = fields.get("MsgId", "")
    if msg_id:
        if not msg_id.isdigit() or len(msg_id) > 24:
            raise BadMessageError("malformed MsgId")
        return msg_id
    created = fields.get("CreateTime", "")
    if not created.isdigit() or len(created) > 12:
        raise BadMessageError("missing or malformed CreateTime")
    parts = [env.user, created, fields.get("Event", "")]
    if fields.get("EventKey"):
        parts.append(fields["EventKey"][:128])
    return ":".join(parts)


def _coordinates(lat: str | None, lon: str | None) -> tuple[float, float] | None:
    try:
        point = (float(lat or ""), float(lon or ""))
    except ValueError:
        return None
    if not all(math.isfinite(v) for v in point) or abs(point[0]) > 90 or abs(point[1]) > 180:
        return None
    return point
