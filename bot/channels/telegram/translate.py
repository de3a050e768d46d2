"""Telegram messages in, `IncomingMessage` out, plus the group rule: in a group
the bot only listens to commands, @mentions of itself and replies to its own
messages; everything else is the neighbours talking among themselves."""

from __future__ import annotations

import re
from dataclasses import dataclass

from telegram import Chat, Message, MessageEntity, User

from flows.messages import IncomingMessage, MessageKind

CHANNEL = "telegram"
# Telegram's own limit for deep-link payloads: 1-64 of A-Z a-z 0-9 _ -.
DEEP_LINK_PAYLOAD = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
MAX_DISPLAY_NAME = 64
_LEADING_JUNK = " \t,，:：、"


@dataclass(frozen=True)
class BotIdentity:
    id: int
    username: str

    def deep_link(self, payload: str) -> str:
        return f"https://t.me/{self.username}?start={payload}"


def is_group(chat: Chat | None) -> bool:
    return chat is not None and chat.type in (Chat.GROUP, Chat.SUPERGROUP)


def _mentions(message: Message, me: BotIdentity) -> bool:
    wanted = (MessageEntity.MENTION, MessageEntity.TEXT_MENTION)
    found = (
        message.parse_entities(list(wanted))
        if message.text
        else message.parse_caption_entities(list(wanted))
    )
    for entity, text in found.items():
        if entity.type == MessageEntity.MENTION and text.lower() == f"@{me.username.lower()}":
            return True
        if entity.type == MessageEntity.TEXT_MENTION and entity.user and entity.user.id == me.id:
            return True
    return False


def replies_to_bot(message: Message, me: BotIdentity) -> bool:
    replied = message.reply_to_message
    if replied is None or replied.from_user is None or replied.from_user.id != me.id:
        return False
    # In forum topics every message "replies" to the topic's first message.
    return replied.forum_topic_created is None


def addressed_to_bot(message: Message, me: BotIdentity) -> bool:
    """Whether the bot should answer a (non-command) message."""
    if not is_group(message.chat):
        return True
    return replies_to_bot(message, me) or _mentions(message, me)


def command_addressed_to_bot(message: Message, me: BotIdentity) -> bool:
    """`/foo@thisbot`, or any command in a private chat; in a group a bare
    `/foo` may be meant for another bot."""
    if not is_group(message.chat):
        return True
    first = (message.text or "").split(maxsplit=1)[0] if message.text else ""
    return first.lower().endswith(f"@{me.username.lower()}") or replies_to_bot(message, me)


def strip_mention(text: str, me: BotIdentity) -> str:
    cleaned = re.sub(rf"@{re.escape(me.username)}\b", " ", text, flags=re.IGNORECASE)
    return " ".join(cleaned.split()).strip(_LEADING_JUNK)


def command_argument(message: Message) -> str:
    """Everything after `/command[@bot]`, keeping its spaces (a whole question)."""
    text = message.text or ""
    entities = message.entities or ()
    if entities and entities[0].type == MessageEntity.BOT_COMMAND and entities[0].offset == 0:
        length = entities[0].length
        # Entity offsets count UTF-16 units; the command itself is ASCII.
        return text[length:].strip()
    return ""


def display_name(user: User | None) -> str | None:
    if user is None:
        return None
    return user.full_name[:MAX_DISPLAY_NAME] or None


def message_kind(message: Message) -> MessageKind | None:
    """The core's kind for a message; None for service messages (joins, pins ...)."""
    if message.text is not None:
        return "text"
    if message.photo:
        return "image"
    if message.sticker:
        return "sticker"
    if message.voice or message.video_note:
        return "voice"
    if message.location or message.venue:
        return "location"
    if message.video or message.animation:
        return "video"
    if message.document or message.audio:
        return "file"
    if message.effective_attachment is not None:
        return "other"  # contact, poll, dice, game ...
    return None


def dedupe_id(chat_id: int, message_id: int) -> str:
    """Stable across webhook redeliveries, unique per chat."""
    return f"{chat_id}:{message_id}"


def base_message(message: Message, **fields: object) -> IncomingMessage:
    """The fields every message from this chat and sender carries."""
    user = message.from_user
    assert user is not None
    base: dict[str, object] = {
        "channel": CHANNEL,
        "user_id": str(user.id),
        "message_id": dedupe_id(message.chat.id, message.message_id),
        "chat_id": str(message.chat.id),
        "in_group": is_group(message.chat),
        "display_name": display_name(user),
    }
    base.update(fields)
    return IncomingMessage(**base)  # type: ignore[arg-type]


def to_incoming(message: Message, me: BotIdentity) -> IncomingMessage | None:
    """The message for the dispatcher, or None when it carries nothing to answer."""
    kind = message_kind(message)
    if kind is None or message.from_user is None:
        return None
    if kind == "text":
        text = message.text or ""
        if is_group(message.chat):
            text = strip_mention(text, me)
        return base_message(message, text=text, kind="text")
    if kind == "image":
        largest = message.photo[-1]
        return base_message(message, kind="image", media_ref=f"telegram:{largest.file_id}")
    if kind == "location":
        venue = message.venue
        location = venue.location if venue is not None else message.location
        assert location is not None
        label = None
        if venue is not None:
            label = " ".join(p for p in (venue.title, venue.address) if p)[:200] or None
        return base_message(
            message,
            kind="location",
            location=(location.latitude, location.longitude),
            location_label=label,
        )
    return base_message(message, kind=kind)


def start_payload(argument: str) -> str | None:
    """A `/start` deep-link payload when it has Telegram's shape, else None."""
    payload = argument.strip()
    return payload if DEEP_LINK_PAYLOAD.match(payload) else None
