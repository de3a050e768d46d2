"""Callback data of inline buttons: a small whitelist of shapes, each signed.

Telegram hands back whatever `callback_data` a client sends, so data is only
trusted when its HMAC matches: a forged or stale press is refused before
anything reads it. The key is derived from the bot token, which only the bot
and Telegram know. Callback data is limited to 64 bytes.

    r:<user id>:<payload>:<sig>      an answer (FAQ choice) the user may press
    s:<t|d|i>:<ticket id>:<sig>      staff: take (接单), done (办结), info
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from dataclasses import dataclass

MAX_CALLBACK_BYTES = 64
_SIG_CHARS = 16  # 96 bits of HMAC-SHA256, base64url
_PAYLOAD = re.compile(r"^[0-9A-Za-z_.\-]{1,16}$")
_TICKET_ID = re.compile(r"^[A-Z0-9][A-Z0-9-]{1,31}$")
STAFF_ACTIONS = frozenset({"t", "d", "i"})


class CallbackDataError(ValueError):
    """Callback data that was not made by this bot (or no longer fits its shapes)."""


@dataclass(frozen=True)
class AnswerPress:
    user_id: int
    payload: str


@dataclass(frozen=True)
class StaffPress:
    action: str  # "t" take, "d" done, "i" info
    ticket_id: str


class CallbackSigner:
    def __init__(self, secret: str) -> None:
        self._key = hmac.new(
            secret.encode("utf-8"), b"tongxin telegram callback data v1", hashlib.sha256
        ).digest()

    def _sig(self, body: str) -> str:
        digest = hmac.new(self._key, body.encode("utf-8"), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).decode("ascii")[:_SIG_CHARS]

    def _seal(self, body: str) -> str | None:
        data = f"{body}:{self._sig(body)}"
        return data if len(data.encode("utf-8")) <= MAX_CALLBACK_BYTES else None

    def answer(self, user_id: int, payload: str) -> str | None:
        """Data for a button that sends `payload` back as the user's text; None
        when the payload does not fit the whitelist (render no button then)."""
        if not _PAYLOAD.match(payload):
            return None
        return self._seal(f"r:{int(user_id)}:{payload}")

    def staff(self, action: str, ticket_id: str) -> str | None:
        if action not in STAFF_ACTIONS or not _TICKET_ID.match(ticket_id):
            return None
        return self._seal(f"s:{action}:{ticket_id}")

    def open(self, data: str | None) -> AnswerPress | StaffPress:
        """Check and decode; raises CallbackDataError for anything else."""
        if not data or len(data.encode("utf-8")) > MAX_CALLBACK_BYTES:
            raise CallbackDataError("missing or oversized callback data")
        body, _, sig = data.rpartition(":")
        if not body or not hmac.compare_digest(sig.encode(), self._sig(body).encode()):
            raise CallbackDataError("bad signature")
        kind, _, rest = body.partition(":")
        first, _, second = rest.partition(":")
        if kind == "r" and first.isdigit() and _PAYLOAD.match(second):
            return AnswerPress(int(first), second)
        if kind == "s" and first in STAFF_ACTIONS and _TICKET_ID.match(second):
            return StaffPress(first, second)
        raise CallbackDataError("unknown callback shape")
