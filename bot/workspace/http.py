"""The plumbing every workspace route shares: the signed-in staff member,
the CSRF check on changes, the store work off the event loop, and one
mapping from domain errors to HTTP status codes."""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import anyio.to_thread
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bot.workspace.accounts import StaffUser
from bot.workspace.service import ConflictError, ForbiddenError, Workspace
from bot.workspace.sessions import SessionKeeper
from flows.staff import StaffInputError
from flows.store import TicketNotFoundError
from flows.workspace_store import AccountError

MAX_BODY_BYTES = 64 * 1024


@dataclass(frozen=True)
class Context:
    """What the routes share: built once per app."""

    workspace: Workspace | None  # None: no TONGXIN_SECRET_KEY, the workspace is off
    sessions: SessionKeeper | None


@dataclass(frozen=True)
class Call:
    request: Request
    user: StaffUser
    workspace: Workspace
    body: bytes

    def json(self) -> dict[str, Any]:
        try:
            data = json.loads(self.body or b"{}")
        except ValueError as exc:
            raise StaffInputError("the body must be a JSON object") from exc
        if not isinstance(data, dict):
            raise StaffInputError("the body must be a JSON object")
        return data

    def path(self, name: str) -> str:
        return str(self.request.path_params[name])

    @property
    def query(self) -> dict[str, str]:
        return dict(self.request.query_params)


Handler = Callable[[Call], Response]
Endpoint = Callable[[Request], Awaitable[Response]]

_STATUS_OF: tuple[tuple[type[Exception], int], ...] = (
    (ForbiddenError, 403),
    (TicketNotFoundError, 404),
    (ConflictError, 409),
    (StaffInputError, 400),
    (AccountError, 400),
)


# Every workspace response: nothing from elsewhere may run or frame it, and
# no copy of personal data stays in a shared office PC's cache.
SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"content-security-policy", b"default-src 'self'; frame-ancestors 'none'; form-action 'self'"),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"cache-control", b"no-store"),
)


class SecurityHeaders:
    """ASGI middleware adding `SECURITY_HEADERS` to every HTTP response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                names = {k.lower() for k, _ in message.get("headers", [])}
                extra = [h for h in SECURITY_HEADERS if h[0] not in names]
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def error_status(exc: Exception) -> int | None:
    for kind, status in _STATUS_OF:
        if isinstance(exc, kind):
            return status
    return None


def json_error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def disabled_response() -> Response:
    return json_error(
        503, "the staff workspace is off: set TONGXIN_SECRET_KEY (at least 16 characters)"
    )


async def _body(request: Request) -> bytes | None:
    if request.method in ("GET", "HEAD"):
        return b""
    body = await request.body()
    return None if len(body) > MAX_BODY_BYTES else body


def _timed(response: Response, started: float) -> Response:
    # Server time, for the bench and the browser's network panel.
    response.headers["Server-Timing"] = f"app;dur={(time.perf_counter() - started) * 1000:.2f}"
    return response


def _handle(handler: Handler, call: Call, on_error: Callable[[int, str], Response]) -> Response:
    try:
        return handler(call)
    except Exception as exc:
        status = error_status(exc)
        if status is None:
            raise
        return on_error(status, str(exc))


def api(ctx: Context, handler: Handler, *, change: bool = False) -> Endpoint:
    """A JSON route: 401 without a session, 403 without the CSRF header on a
    change (and for a viewer), domain errors as their status codes."""

    async def endpoint(request: Request) -> Response:
        started = time.perf_counter()
        if ctx.workspace is None or ctx.sessions is None:
            return disabled_response()
        body = await _body(request)
        if body is None:
            return json_error(413, "the body is too large")
        workspace, sessions = ctx.workspace, ctx.sessions

        def run() -> Response:
            user = sessions.user(request)
            if user is None:
                return json_error(401, "sign in first")
            if change and not sessions.csrf_ok(request, user):
                return json_error(403, "missing or wrong X-CSRF-Token")
            if change and not user.can_change:
                return json_error(403, "a viewer account reads only")
            return _handle(handler, Call(request, user, workspace, body), json_error)

        return _timed(await anyio.to_thread.run_sync(run), started)

    return endpoint


def page(ctx: Context, handler: Handler, render_error: Callable[[int, str], Response]) -> Endpoint:
    """An HTML page: without a session, off to the sign-in page."""

    async def endpoint(request: Request) -> Response:
        started = time.perf_counter()
        if ctx.workspace is None or ctx.sessions is None:
            return render_error(
                503, "员工工作台未启用：请设置 TONGXIN_SECRET_KEY（至少 16 个字符）后重启服务。"
            )
        workspace, sessions = ctx.workspace, ctx.sessions

        def run() -> Response:
            user = sessions.user(request)
            if user is None:
                target = request.url.path
                if request.url.query:
                    target += "?" + request.url.query
                return RedirectResponse(f"/staff/login?next={quote(target, safe='/')}", 303)
            return _handle(handler, Call(request, user, workspace, b""), render_error)

        return _timed(await anyio.to_thread.run_sync(run), started)

    return endpoint


def safe_next(raw: str | None) -> str:
    """Only a path inside the workspace: never an open redirect."""
    if raw and raw.startswith("/staff/") and not raw.startswith("//") and "\\" not in raw:
        return raw
    return "/staff/"
