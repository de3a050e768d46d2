"""`Reply` out as Telegram message text and inline keyboard."""

from __future__ import annotations

from dataclasses import dataclass

from telegram import InlineKeyboardButton, InlineKeyboardMarkup

from bot.channels.telegram.callbacks import CallbackSigner
from bot.channels.telegram.translate import BotIdentity
from flows.messages import Reply

MAX_TEXT_UTF16 = 4096  # Telegram counts message length in UTF-16 code units
MAX_BUTTON_LABEL = 64
MAX_ALERT_CHARS = 200  # answerCallbackQuery text
ELLIPSIS = "…"


def utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def trim_text(text: str, limit: int = MAX_TEXT_UTF16) -> str:
    """`text` cut to Telegram's limit, ending in an ellipsis when it was cut."""
    if utf16_len(text) <= limit:
        return text
    budget = limit - utf16_len(ELLIPSIS)
    out: list[str] = []
    used = 0
    for ch in text:
        width = 2 if ord(ch) > 0xFFFF else 1
        if used + width > budget:
            break
        out.append(ch)
        used += width
    return "".join(out).rstrip() + ELLIPSIS


def _label(text: str) -> str:
    return text if len(text) <= MAX_BUTTON_LABEL else text[: MAX_BUTTON_LABEL - 1] + ELLIPSIS


@dataclass(frozen=True)
class RenderedReply:
    text: str
    markup: InlineKeyboardMarkup | None


def render_reply(
    reply: Reply,
    *,
    me: BotIdentity,
    signer: CallbackSigner,
    user_id: int,
    private_label: str,
) -> RenderedReply | None:
    """The message for one reply (None for an empty one). A `private_payload`
    becomes a deep-link button to the private chat; other buttons send their
    payload back as the user's text through signed callback data."""
    text = reply.text.strip()
    if not text:
        return None
    rows: list[list[InlineKeyboardButton]] = []
    if reply.private_payload:
        label = next(
            (b.label for b in reply.buttons if b.payload.startswith("/start")), private_label
        )
        rows.append([InlineKeyboardButton(_label(label), url=me.deep_link(reply.private_payload))])
    for button in reply.buttons:
        if button.payload.startswith("/start"):
            continue  # the deep link above stands for it
        data = signer.answer(user_id, button.payload)
        if data is not None:
            rows.append([InlineKeyboardButton(_label(button.label), callback_data=data)])
    return RenderedReply(trim_text(text), InlineKeyboardMarkup(rows) if rows else None)
