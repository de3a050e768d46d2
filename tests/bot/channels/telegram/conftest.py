"""A Telegram channel on a temp database, talking to a fake Bot API on
127.0.0.1 (reached through TONGXIN_TELEGRAM_API_URL's setting), with the ASGI
app reached through httpx. `tg` posts real Update JSON and reads what the bot
sent."""

from __future__ import annotations

import asyncio
import copy
import importlib.util
import itertools
import json
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from bot.app import Core, build_core
from bot.channels.telegram import TelegramChannel, TelegramLimits
from bot.settings import Settings
from bot.web import create_app
from flows.paths import default_data_dir
from nlu.parser import Parser

HERE = Path(__file__).parent
FIXTURES = HERE.parents[2] / "fixtures" / "telegram"
SECRET = "test-secret_4f9a"
STAFF_CHAT = -1009876543210
STAFF_USER = 555000555
GROUP = {"id": -1001234567890, "title": "幸福里社区居民群", "type": "supergroup"}


def _load_fake_api() -> Any:
    spec = importlib.util.spec_from_file_location("telegram_fake_bot_api", HERE / "fake_bot_api.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


fake = _load_fake_api()
BOT_USER = fake.BOT_USER


def fixture_update(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / f"{name}.json").read_text(encoding="utf-8"))
    return data


def person(user_id: int, first_name: str) -> dict[str, Any]:
    return {"id": user_id, "is_bot": False, "first_name": first_name, "language_code": "zh-hans"}


def private_chat(user: dict[str, Any]) -> dict[str, Any]:
    return {"id": user["id"], "first_name": user["first_name"], "type": "private"}


@pytest.fixture
def telegram_fixture() -> Callable[[str], dict[str, Any]]:
    return fixture_update


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def fake_api() -> Iterator[Any]:
    api = fake.FakeBotApi()
    api.start_in_thread()
    yield api
    api.stop()


@pytest.fixture
def api(fake_api: Any) -> Any:
    fake_api.reset()
    return fake_api


@pytest.fixture
def tg_settings(tmp_path: Path, api: Any) -> Settings:
    return Settings(
        db_path=tmp_path / "tongxin.db",
        data_dir=default_data_dir(),
        telegram_token=api.token,
        telegram_webhook_secret=SECRET,
        telegram_api_url=api.url,
        staff_chat_id=str(STAFF_CHAT),
        staff_user_ids=frozenset({STAFF_USER}),
    )


@pytest.fixture
def tg_core(tg_settings: Settings, nlu_parser: Parser) -> Iterator[Core]:
    core = build_core(tg_settings, parser=nlu_parser, inline_outbox=frozenset())
    yield core
    core.close()


@dataclass
class Harness:
    """Tests reach every helper through this object (test modules cannot import
    each other under --import-mode=importlib)."""

    SECRET = SECRET
    GROUP = GROUP
    STAFF_CHAT = STAFF_CHAT
    STAFF_USER = STAFF_USER
    BOT = BOT_USER

    api: Any
    core: Core
    channel: TelegramChannel
    client: httpx.AsyncClient
    _ids: Iterator[int] = field(default_factory=lambda: itertools.count(870000001))
    _message_ids: Iterator[int] = field(default_factory=lambda: itertools.count(7001))

    fixture = staticmethod(fixture_update)
    person = staticmethod(person)

    async def post(
        self, update: dict[str, Any], *, secret: str | bytes | None = SECRET
    ) -> httpx.Response:
        headers = {"X-Telegram-Bot-Api-Secret-Token": secret} if secret is not None else {}
        return await self.client.post("/telegram", json=update, headers=headers)

    async def deliver(self, update: dict[str, Any]) -> None:
        """Post one update (as Telegram would) and wait until it has been handled."""
        response = await self.post(update)
        assert response.status_code == 200, response.text
        await self.channel.drain()

    async def wait_for(self, check: Callable[[], Any], timeout: float = 15.0) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = check()
            if found:
                return found
            await asyncio.sleep(0.02)
        raise AssertionError("condition not met in time")

    def message(
        self,
        user: dict[str, Any],
        text: str,
        *,
        chat: dict[str, Any] | None = None,
        entities: list[dict[str, Any]] | None = None,
        reply_to: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        msg: dict[str, Any] = {
            "message_id": next(self._message_ids),
            "from": user,
            "chat": chat or private_chat(user),
            "date": int(time.time()),
            "text": text,
        }
        if text.startswith("/") and entities is None:
            command = text.split()[0]
            entities = [{"offset": 0, "length": len(command), "type": "bot_command"}]
        if entities:
            msg["entities"] = entities
        if reply_to is not None:
            msg["reply_to_message"] = reply_to
        return {"update_id": next(self._ids), "message": msg}

    def mention(self, user: dict[str, Any], text: str, chat: dict[str, Any]) -> dict[str, Any]:
        handle = f"@{BOT_USER['username']}"
        return self.message(
            user,
            f"{handle} {text}",
            chat=chat,
            entities=[{"offset": 0, "length": len(handle), "type": "mention"}],
        )

    def callback(
        self, user: dict[str, Any], data: str, message: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        query: dict[str, Any] = {
            "id": f"cbq{next(self._ids)}",
            "from": user,
            "chat_instance": "-8236437821312456789",
            "data": data,
        }
        if message is not None:
            query["message"] = message
        return {"update_id": next(self._ids), "callback_query": query}

    async def say(self, update: dict[str, Any]) -> list[Any]:
        """Deliver an update; the sendMessage calls it caused (staff-chat posts,
        which a background loop makes, are left out: use `wait_for` for them)."""
        before = len(self.api.find("sendMessage"))
        await self.deliver(update)
        sent = self.api.find("sendMessage")[before:]
        return [c for c in sent if c.chat() != STAFF_CHAT]

    def sent_message(self, call: Any) -> dict[str, Any]:
        """A message the bot sent, as Telegram would show it inside a later update."""
        chat_id = int(call.params["chat_id"])
        chat = GROUP if chat_id == GROUP["id"] else {"id": chat_id, "type": "private"}
        if chat_id == STAFF_CHAT:
            chat = {"id": STAFF_CHAT, "title": "同心值班群", "type": "supergroup"}
        if chat["type"] == "private":
            chat = {**chat, "first_name": "居民"}
        msg = {
            "message_id": 90000 + len(self.api.calls),
            "from": BOT_USER,
            "chat": chat,
            "date": int(time.time()),
            "text": call.params.get("text", ""),
        }
        if call.params.get("reply_markup"):
            msg["reply_markup"] = copy.deepcopy(call.params["reply_markup"])
        return msg


def fast_limits() -> TelegramLimits:
    return TelegramLimits(max_retries=1)


@pytest.fixture
async def tg(tg_core: Core, api: Any) -> AsyncIterator[Harness]:
    channel = TelegramChannel(
        tg_core, limits=fast_limits(), outbox_interval_s=0.05, staff_interval_s=0.05
    )
    await channel.start()
    app = create_app(tg_core, [channel])
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://tongxin.test") as client:
        yield Harness(api, tg_core, channel, client)
    await channel.stop()
