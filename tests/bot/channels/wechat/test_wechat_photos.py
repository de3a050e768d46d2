"""A photo a resident sends with a report: downloaded with media/get from the
fake WeChat API when the dialogue attaches it, type checked by its bytes,
shown on the staff workspace's ticket page, erased by `privacy forget`."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from bot.app import build_core
from bot.channels.wechat.translate import CHANNEL
from bot.cli.main import main
from bot.photos import PhotoStore
from bot.web import create_app
from bot.workspace.accounts import add_account, load_routing
from flows.workspace_store import WorkspaceStore

from .conftest import WeChatServer, fixture_xml, make_channel, wechat_settings

pytestmark = pytest.mark.anyio
USER = "oPhoto5xYk2WmTn7Rb9HcL0gZ1aVe"
MEDIA_ID = "Hn4Jk6Lm8Np0Qr2St4Uv6Wx8Yz0Ab2Cd4Ef6Gh8Ij0Kl2"
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01" + bytes(range(256)) * 8 + b"\xff\xd9"
SECRET = "test-secret-key-0123456789"
PASSWORD = "correct horse battery"


async def wait_for(check: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not await asyncio.to_thread(check):
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        await asyncio.sleep(0.05)


def core_with_workspace(tmp_path: Path, api_url: str, nlu_parser: Any) -> Any:
    settings = wechat_settings(tmp_path / "tongxin.db", api_url)
    from dataclasses import replace

    core = build_core(
        replace(settings, secret_key=SECRET), parser=nlu_parser, inline_outbox=frozenset()
    )
    ws = WorkspaceStore(core.store)
    add_account(ws, "admin", PASSWORD, "admin", None, load_routing(settings.data_dir))
    return core


async def report_with_photo(client: httpx.AsyncClient, wechat: WeChatServer) -> None:
    await wechat.say(USER, "我要反映问题，小区门口的路灯坏了好几天了")
    await wechat.send(fixture_xml("image", user=USER))


async def test_an_attached_photo_is_kept_and_shown_to_staff(
    tmp_path: Path, fake_api: Any, nlu_parser: Any
) -> None:
    fake_api.media[MEDIA_ID] = (JPEG, "image/jpeg")
    core = core_with_workspace(tmp_path, fake_api.url, nlu_parser)
    photos = PhotoStore(core.store, retention_days=180)
    app = create_app(core, [make_channel(core)])
    try:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t.test") as client:
                wechat = WeChatServer(client)
                await report_with_photo(client, wechat)
                await wait_for(lambda: photos.has(CHANNEL, MEDIA_ID))
                await wechat.say(USER, "幸福路12号门口")
                await wechat.say(USER, "不留")
                await wechat.say(USER, "确认")
                (ticket,) = core.store.list_tickets(kind="report_issue")
                assert ticket.fields["attachments"] == [MEDIA_ID]
                url = f"/staff/tickets/{ticket.id}/photos/0"
                anonymous = await client.get(url)
                assert anonymous.status_code == 303  # to the sign-in page
                assert JPEG not in anonymous.content
                signed_in = await client.post(
                    "/staff/login", data={"username": "admin", "password": PASSWORD}
                )
                assert signed_in.status_code == 303
                page = await client.get(f"/staff/tickets/{ticket.id}")
                assert f'<img src="{url}"' in page.text
                photo = await client.get(url)
                assert photo.status_code == 200 and photo.content == JPEG
                assert photo.headers["content-type"] == "image/jpeg"
                assert photo.headers["x-content-type-options"] == "nosniff"
                assert (await client.get(f"/staff/tickets/{ticket.id}/photos/1")).status_code == 404
        assert fake_api.media_requests == [MEDIA_ID]  # once, when it was attached
        db = str(core.settings.db_path)
        assert main(["privacy", "forget", "--user", USER, "--yes", "--db", db]) == 0
        assert not photos.has(CHANNEL, MEDIA_ID)
    finally:
        core.close()


async def test_a_file_that_is_not_an_image_is_not_kept(
    tmp_path: Path, fake_api: Any, kit_factory: Any
) -> None:
    # WeChat's Content-Type says JPEG; the bytes say HTML.
    fake_api.media[MEDIA_ID] = (b"<html><script>alert(1)</script></html>", "image/jpeg")
    async with kit_factory() as kit:
        await report_with_photo(kit.wechat.client, kit.wechat)
        await wait_for(lambda: fake_api.media_requests == [MEDIA_ID])
        await asyncio.sleep(0.2)
        assert not PhotoStore(kit.core.store, retention_days=1).has(CHANNEL, MEDIA_ID)


async def test_a_photo_outside_a_report_is_not_downloaded(fake_api: Any, kit_factory: Any) -> None:
    fake_api.media[MEDIA_ID] = (JPEG, "image/jpeg")
    async with kit_factory() as kit:
        answer = await kit.wechat.send(fixture_xml("image", user=USER))
        assert answer.text
        await asyncio.sleep(0.3)
    assert fake_api.media_requests == []


def test_a_photo_goes_when_its_retention_period_ends(tmp_path: Path) -> None:
    from flows.store import Store

    store = Store(tmp_path / "t.db")
    try:
        photos = PhotoStore(store, retention_days=0.3 / 86400)  # 0.3 s
        photos.keep(CHANNEL, USER, MEDIA_ID, JPEG)
        assert photos.get(CHANNEL, MEDIA_ID) is not None
        time.sleep(0.4)
        assert photos.get(CHANNEL, MEDIA_ID) is None
        assert store.purge_expired_kv() == 1  # and the row itself is deleted
    finally:
        store.close()
