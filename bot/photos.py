"""Photos residents attach to a report, kept with the ticket.

WeChat deletes temporary media after 3 days and Telegram file links expire,
so a photo is downloaded when the dialogue attaches it to a form and kept in
the store's key/value table (base64 text: no new table, the same SQL on
SQLite and PostgreSQL) with the retention period as its time to live
(TONGXIN_PHOTO_RETENTION_DAYS). Its JSON names the user, so `privacy forget`
erases it with the user's other rows. Only JPEG, PNG, GIF and WebP up to
`MAX_PHOTO_BYTES` are kept, told apart by their first bytes, never by what
the platform's Content-Type claims.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass

from flows.messages import IncomingMessage
from flows.state import ConversationState
from flows.store import Store, iso, utcnow

log = logging.getLogger("tongxin.photos")

PREFIX = "photo:"
MAX_PHOTO_BYTES = 10 * 1024 * 1024  # WeChat's own limit for images


class PhotoRejectedError(ValueError):
    """Not an image we keep (type or size)."""


def sniff_image(data: bytes) -> str | None:
    """The image type by its magic bytes, or None."""
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


@dataclass(frozen=True)
class Photo:
    ref: str
    content_type: str
    data: bytes
    at: str


def photo_key(channel: str, ref: str) -> str:
    return f"{PREFIX}{channel}:{hashlib.sha256(ref.encode()).hexdigest()[:40]}"


class PhotoStore:
    """Blocking: call from a worker thread."""

    def __init__(self, store: Store, *, retention_days: float) -> None:
        self.store = store
        self.retention_s = retention_days * 86400.0

    def keep(self, channel: str, user_id: str, ref: str, data: bytes) -> Photo:
        if len(data) > MAX_PHOTO_BYTES:
            raise PhotoRejectedError(f"{len(data)} bytes is over {MAX_PHOTO_BYTES}")
        content_type = sniff_image(data)
        if content_type is None:
            raise PhotoRejectedError("not a JPEG, PNG, GIF or WebP image")
        at = iso(utcnow())
        record = {
            "user_id": user_id,
            "ref": ref,
            "content_type": content_type,
            "size": len(data),
            "at": at,
            "data": base64.b64encode(data).decode("ascii"),
        }
        self.store.kv_set(photo_key(channel, ref), json.dumps(record), ttl_s=self.retention_s)
        return Photo(ref, content_type, data, at)

    def has(self, channel: str, ref: str) -> bool:
        return self.store.kv_get(photo_key(channel, ref)) is not None

    def get(self, channel: str, ref: str) -> Photo | None:
        raw = self.store.kv_get(photo_key(channel, ref))
        if raw is None:
            return None
        record = json.loads(raw)
        return Photo(
            record["ref"], record["content_type"], base64.b64decode(record["data"]), record["at"]
        )


def attached_to_form(store: Store, msg: IncomingMessage) -> bool:
    """Did the turn just handled attach this image to the user's open form?"""
    if msg.kind != "image" or not msg.media_ref:
        return False
    state = ConversationState.from_json(store.load_conversation(msg.channel, msg.user_id))
    return state.form is not None and msg.media_ref[:500] in state.form.attachments


class PhotoKeeper:
    """Keeps a photo the dialogue attached, once. Blocking: channels run it
    after the turn in a worker thread, so replies never wait on a download."""

    def __init__(self, photos: PhotoStore) -> None:
        self.photos = photos

    def wanted(self, msg: IncomingMessage) -> bool:
        """An image just attached to a form and not kept yet."""
        return attached_to_form(self.photos.store, msg) and not self.photos.has(
            msg.channel, msg.media_ref or ""
        )

    def keep(self, msg: IncomingMessage, data: bytes) -> Photo | None:
        try:
            return self.photos.keep(msg.channel, msg.user_id, msg.media_ref or "", data)
        except PhotoRejectedError as exc:
            log.warning("%s photo not kept: %s", msg.channel, exc)
            return None

    def fetch_and_keep(self, msg: IncomingMessage, fetch: Callable[[str], bytes]) -> Photo | None:
        if not self.wanted(msg):
            return None
        try:
            data = fetch(msg.media_ref or "")
        except Exception as exc:  # the media id stays on the ticket; staff see it is missing
            log.warning("%s photo not downloaded: %s", msg.channel, type(exc).__name__)
            return None
        return self.keep(msg, data)
