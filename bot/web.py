"""The one ASGI app behind `tongxin serve`: /healthz plus each configured channel."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from typing import Any

import anyio
import anyio.to_thread
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route

from bot.app import Core
from bot.channels.base import ChannelService
from bot.overdue_sweeper import running_sweeper
from bot.workspace import workspace_mount

# /healthz waits this long for the store's write probe; longer means "busy".
HEALTH_PROBE_S = 3.0
# Shown in /healthz even when off, so that a missing setting is visible.
KNOWN_CHANNELS = ("wechat", "telegram", "wecom")


def create_app(core: Core, channels: Sequence[ChannelService]) -> Starlette:
    async def healthz(request: Request) -> JSONResponse:
        """ok only when the store takes a write (a full disk, a read-only,
        deleted or replaced file all fail it) and every channel says it works.
        `channel_state` has each channel: configured, reachable (None: not
        known yet), its last error."""
        body: dict[str, Any] = {"channels": [c.name for c in channels]}
        ok = True
        try:
            # The store lock may be held by a turn; never block the event loop on it.
            with anyio.fail_after(HEALTH_PROBE_S):
                await anyio.to_thread.run_sync(core.store.probe_write, abandon_on_cancel=True)
            body["schema_version"] = await anyio.to_thread.run_sync(core.store.schema_version)
            body["db"] = "ok"
        except TimeoutError:
            ok, body["db"] = False, "busy: no write within 3 s"
        except Exception as exc:
            ok, body["db"] = False, f"unavailable: {type(exc).__name__}: {exc}"[:200]
        # Informational: a Rasa server that is down costs no health, the embedded model answers.
        body["nlu"] = core.parser.backend_status()
        states = {}
        for channel in channels:
            check = getattr(channel, "health", None)
            state = check() if check is not None else {"ok": True}
            states[channel.name] = state
            ok = ok and bool(state.get("ok"))
        for name in KNOWN_CHANNELS:
            states.setdefault(name, {"configured": False})
        body["channel_state"] = states
        body["status"] = "ok" if ok else "error"
        return JSONResponse(body, status_code=200 if ok else 503)

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
            async with running_sweeper(core):
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
    from bot.http_guard import install_log_filters
    from bot.settings import Settings

    install_log_filters()

    core = build_core(Settings.from_env(), inline_outbox=frozenset())
    return create_app(core, build_channels(core, telegram_polling=False))
