"""The staff workspace under /staff/: pages for people, /staff/api/ for the
pages and for outside checks (CONTRACT, "Staff workspace")."""

from __future__ import annotations

from datetime import timedelta

from starlette.routing import Mount

from bot.app import Core

MIN_SECRET_CHARS = 16


def secret_problem(secret_key: str | None) -> str | None:
    """Why the workspace cannot start with this key, or None when it can."""
    if not secret_key:
        return "TONGXIN_SECRET_KEY is not set (it signs staff session cookies)"
    if len(secret_key) < MIN_SECRET_CHARS:
        return f"TONGXIN_SECRET_KEY must have at least {MIN_SECRET_CHARS} characters"
    return None


def workspace_mount(core: Core) -> Mount:
    """`/staff` for the ASGI app; without a usable secret key every route
    answers 503 and says what is missing."""
    from bot.workspace import api, review
    from bot.workspace.http import Context
    from bot.workspace.pages import Pages
    from bot.workspace.service import Workspace
    from bot.workspace.sessions import SessionKeeper

    settings = core.settings
    if secret_problem(settings.secret_key) is None:
        assert settings.secret_key is not None
        workspace = Workspace.build(core)
        sessions = SessionKeeper(
            workspace.ws, settings.secret_key, timedelta(hours=settings.session_hours)
        )
        ctx = Context(workspace, sessions)
        desk: review.ReviewDesk | None = review.ReviewDesk(core)
    else:
        ctx = Context(None, None)
        desk = None
    from starlette.routing import Router

    from bot.workspace.http import SecurityHeaders

    pages = Pages(ctx)
    router = Router(
        routes=[
            Mount("/api", routes=[*api.routes(ctx), *review.api_routes(ctx, desk)]),
            *review.page_routes(ctx, desk, pages.env, pages._base, pages.error),
            *pages.routes(),
        ]
    )
    return Mount("/staff", app=SecurityHeaders(router))
