"""/healthz tells the truth about Telegram: a bot that cannot reach its Bot API
is not ok (HTTP 503), even though the store works."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from bot.app import build_core
from bot.channels.telegram import TelegramChannel
from bot.settings import Settings
from bot.web import create_app
from flows.paths import default_data_dir
from nlu.parser import Parser
from tests.hardening.live import free_port

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def test_a_bot_that_cannot_reach_its_api_is_not_healthy(
    tmp_path: Path, nlu_parser: Parser
) -> None:
    settings = Settings(
        db_path=tmp_path / "t.db",
        data_dir=default_data_dir(),
        telegram_token="123456:TEST-token",
        telegram_webhook_secret="s3cret",
        telegram_api_url=f"http://127.0.0.1:{free_port()}",  # nothing listens
    )
    core = build_core(settings, parser=nlu_parser, inline_outbox=frozenset())
    app = create_app(core, [TelegramChannel(core)])
    try:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                health = await client.get("/healthz")
    finally:
        core.close()
    assert health.status_code == 503
    body = health.json()
    assert body["db"] == "ok" and body["channel_state"]["telegram"]["ok"] is False
