"""A photo sent with a Telegram report: fetched with getFile from the fake
Bot API when the dialogue attaches it, and kept with the ticket."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from bot.photos import PhotoStore

from .conftest import person

pytestmark = pytest.mark.anyio
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + bytes(64)
FILE_ID = "AgACAgUAAxkBAAMPZ0large"


async def test_an_attached_telegram_photo_is_fetched_and_kept(tg: Any) -> None:
    tg.api.files[FILE_ID] = PNG
    wang = person(111111111, "王芳")
    await tg.say(tg.message(wang, "我要反映问题，小区门口的路灯坏了好几天了"))
    sent = await tg.say(tg.fixture("photo"))
    assert "图片已附" in sent[0].params["text"]
    photos = PhotoStore(tg.core.store, retention_days=30)
    ref = f"telegram:{FILE_ID}"
    deadline = time.monotonic() + 10
    while not photos.has("telegram", ref) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    kept = photos.get("telegram", ref)
    assert kept is not None and kept.data == PNG and kept.content_type == "image/png"
    assert tg.api.downloads == [FILE_ID]  # the largest size only, once
