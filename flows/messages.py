"""The one message type that enters the core and the one reply type that leaves it.

Channels translate platform payloads into `IncomingMessage` and render `Reply`
back; they never reach further into the core than this module.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

MessageKind = Literal[
    "text",  # typed text, or a voice message WeChat already recognised
    "voice",  # voice with no recognised text
    "location",
    "image",
    "video",
    "link",
    "file",
    "sticker",
    "event",  # subscribe, unsubscribe, menu click ...
    "other",
]


@dataclass(frozen=True)
class IncomingMessage:
    channel: str  # "shell", "wechat", "telegram"
    user_id: str  # stable per channel: OpenID, Telegram user id, shell --user
    text: str = ""
    kind: MessageKind = "text"
    message_id: str | None = None  # platform id used for de-duplication
    chat_id: str | None = None  # where the reply goes when it differs from the user
    in_group: bool = False  # group chats must never collect personal details
    event: str | None = None  # "subscribe", "unsubscribe", "menu"
    event_key: str | None = None  # menu key, deep-link payload
    location: tuple[float, float] | None = None  # (latitude, longitude)
    location_label: str | None = None
    media_ref: str | None = None  # platform media id / URL of an image
    display_name: str | None = None


def conversation_key(msg: IncomingMessage) -> str:
    """Group chats keep their own small state per member, apart from the
    member's private conversation (which holds forms and personal details)."""
    if msg.in_group and msg.chat_id:
        return f"{msg.user_id}@{msg.chat_id}"
    return msg.user_id


@dataclass(frozen=True)
class Button:
    label: str
    payload: str  # text sent back as if the user typed it (e.g. "1")


@dataclass(frozen=True)
class Reply:
    text: str
    buttons: tuple[Button, ...] = field(default_factory=tuple)
    # Set when a group must hand the user over to a private chat; the payload
    # restarts the requested flow there (Telegram deep link `?start=<payload>`).
    private_payload: str | None = None
