"""The one ASGI app behind `tongxin serve`: /healthz plus each configured channel."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence

import anyio.to_thread
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route

from bot.app import Core
from bot.channels.base import ChannelService
from bot.workspace import workspace_mount


def create_app(core: Core, channels: Sequence[ChannelService]) -> Starlette:
    async def healthz(request: Request) -> JSONResponse:
        try:
            # The store lock may be held by a turn; never block the event loop on it.
            version = await anyio.to_thread.run_sync(core.store.schema_version)
        except Exception:
            return JSONResponse({"status": "error", "db": "unavailable"}, status_code=503)
        return JSONResponse(
            {"status": "ok", "schema_version": version, "channels": [c.name for c in channels]}
        )

    routes: list[BaseRoute] = [Route("/healthz", healthz, methods=["GET"])]
    for channel in channels:
        routes.extend(channel.routes())
    routes.append(workspace_mount(core))

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        started: list[ChannelService] = []
        try:
            for channel in channels:
                await channel.start()
                started.append(channel)
            yield
        finally:
            for channel in reversed(started):
                await channel.stop()

    return Starlette(routes=routes, lifespan=lifespan)


def app_from_env() -> Starlette:
    """App factory for `tongxin serve --workers N`: each worker process builds
    its own core from the environment (uvicorn imports this by name)."""
    from bot.app import build_core
    from bot.cli.serve_cmd import build_channels
    from bot.settings import Settings

    core = build_core(Settings.from_env(), inline_outbox=frozenset())
    return create_app(core, build_channels(core, telegram_polling=False))
