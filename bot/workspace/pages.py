"""`/staff/`: the server-rendered pages (Jinja2, autoescaped; no CDN, the
only script is our own `static/app.js`) and signing in and out."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode

import anyio.to_thread
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from bot.workspace import dashboard, export
from bot.workspace.http import Call, Context, page, safe_next
from bot.workspace.service import PAGE_SIZE, filter_from_query
from bot.workspace.sessions import ThrottledError
from flows.staff import local_time
from flows.store import TICKET_STATUSES

HERE = Path(__file__).resolve().parent


def _env() -> Environment:
    env = Environment(
        loader=FileSystemLoader(HERE / "templates"),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["local"] = local_time
    return env


def _login_fields(body: bytes, content_type: str) -> dict[str, str]:
    """The sign-in form (urlencoded), or the same fields as a JSON object."""
    text = body.decode("utf-8", errors="replace")
    if content_type.startswith("application/json"):
        try:
            data = json.loads(text)
        except ValueError:
            return {}
        if not isinstance(data, dict):
            return {}
        return {k: v for k, v in data.items() if isinstance(k, str) and isinstance(v, str)}
    return {k: v[0] for k, v in parse_qs(text, keep_blank_values=True).items()}


class Pages:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.env = _env()

    def render(self, name: str, code: int = 200, **values: Any) -> HTMLResponse:
        html = self.env.get_template(name).render(**values)
        return HTMLResponse(html, status_code=code)

    def error(self, status: int, message: str) -> Response:
        return self.render("error.html", status, status=status, message=message, user=None)

    def _base(self, call: Call, **values: Any) -> dict[str, Any]:
        ws = call.workspace
        return {
            "user": call.user,
            "ws": ws,
            "may_volunteers": ws.may_see_volunteers(call.user),
            **values,
        }

    # -- sign in ----------------------------------------------------------

    async def login_form(self, request: Request) -> Response:
        if self.ctx.sessions is None:
            return self.error(503, "员工工作台未启用：请设置 TONGXIN_SECRET_KEY 后重启服务。")
        return self.render(
            "login.html", user=None, next=safe_next(request.query_params.get("next")), error=None
        )

    async def login(self, request: Request) -> Response:
        sessions = self.ctx.sessions
        if sessions is None:
            return self.error(503, "员工工作台未启用：请设置 TONGXIN_SECRET_KEY 后重启服务。")
        form = _login_fields((await request.body())[:8192], request.headers.get("content-type", ""))
        username = form.get("username", "").strip()[:64]
        password = form.get("password", "")[:256]
        target = safe_next(form.get("next"))
        address = request.client.host if request.client else "unknown"
        try:
            token = await anyio.to_thread.run_sync(sessions.login, username, password, address)
        except ThrottledError as exc:
            response = self.render(
                "login.html",
                429,
                user=None,
                next=target,
                error="登录失败次数过多，请 15 分钟后再试。",
            )
            response.headers["Retry-After"] = str(exc.retry_after_s)
            return response
        if token is None:
            return self.render(
                "login.html", 401, user=None, next=target, error="用户名或密码不正确。"
            )
        moved = RedirectResponse(target, status_code=303)
        sessions.set_cookie(moved, token, secure=request.url.scheme == "https")
        return moved

    async def logout(self, request: Request) -> Response:
        response = RedirectResponse("/staff/login", status_code=303)
        if self.ctx.sessions is not None:
            sessions = self.ctx.sessions
            await anyio.to_thread.run_sync(sessions.logout, request, response)
        return response

    # -- pages ----------------------------------------------------------

    def queue(self, call: Call) -> Response:
        ws, query = call.workspace, call.query
        f = filter_from_query(query)
        order = "newest" if query.get("order") == "newest" else "overdue"
        try:
            number = max(1, int(query.get("page") or 1))
        except ValueError:
            number = 1
        result = ws.queue(
            call.user, f, order=order, limit=PAGE_SIZE, offset=(number - 1) * PAGE_SIZE
        )
        counts = result.counts
        kept = {k: v for k, v in query.items() if v and k != "page"}
        pages = max(1, math.ceil(result.total / PAGE_SIZE))
        scope = call.user.departments
        return self.render(
            "queue.html",
            **self._base(
                call,
                f=f,
                order=order,
                page=result,
                items=[ws.list_item(t, t.id in result.overdue_ids) for t in result.tickets],
                counts=counts,
                all_count=sum(counts.values()),
                statuses=TICKET_STATUSES,
                # Volunteer signups have their own page, not tickets.
                kinds=sorted(k for k in ws.routing if k != "volunteer_signup"),
                departments=ws.departments if scope is None else sorted(scope),
                assignees=ws.ws.assignees(scope),
                number=number,
                pages=pages,
                query_without=lambda *drop, **add: urlencode(
                    {**{k: v for k, v in kept.items() if k not in drop}, **add}
                ),
                export_query=urlencode(kept),
            ),
        )

    def ticket(self, call: Call) -> Response:
        ws = call.workspace
        detail = ws.detail(call.user, call.path("ticket_id"))
        return self.render(
            "ticket.html",
            **self._base(
                call,
                t=detail,
                statuses=[s for s in TICKET_STATUSES if s != "assigned"],
                assignable=ws.staff_for(detail["department"]),
            ),
        )

    def photo(self, call: Call) -> Response:
        """A resident's photo: its sniffed type, never sniffed again by the browser."""
        try:
            n = int(call.path("n"))
        except ValueError:
            n = -1
        found = call.workspace.photo(call.user, call.path("ticket_id"), n)
        return Response(
            found.data,
            media_type=found.content_type,
            headers={
                "X-Content-Type-Options": "nosniff",
                "Cache-Control": "private, no-store",
                "Content-Security-Policy": "default-src 'none'; sandbox",
            },
        )

    def volunteers(self, call: Call) -> Response:
        ws, query = call.workspace, call.query
        rows = ws.volunteers(call.user, query)
        kept = {k: v for k, v in query.items() if v}
        return self.render(
            "volunteers.html",
            **self._base(
                call,
                rows=rows,
                teams=ws.ws.volunteer_teams(),
                query=query,
                export_query=urlencode(kept),
            ),
        )

    def routes(self) -> list[BaseRoute]:
        ctx, err = self.ctx, self.error
        return [
            Route("/", page(ctx, self.queue, err), methods=["GET"]),
            Route("/login", self.login_form, methods=["GET"]),
            Route("/login", self.login, methods=["POST"]),
            Route("/logout", self.logout, methods=["POST"]),
            Route("/tickets/{ticket_id}", page(ctx, self.ticket, err), methods=["GET"]),
            Route("/tickets/{ticket_id}/photos/{n}", page(ctx, self.photo, err), methods=["GET"]),
            Route("/volunteers", page(ctx, self.volunteers, err), methods=["GET"]),
            Route("/export/tickets.csv", page(ctx, export.tickets_csv, err), methods=["GET"]),
            Route("/export/tickets.xlsx", page(ctx, export.tickets_xlsx, err), methods=["GET"]),
            Route("/export/volunteers.csv", page(ctx, export.volunteers_csv, err), methods=["GET"]),
            Route(
                "/export/volunteers.xlsx", page(ctx, export.volunteers_xlsx, err), methods=["GET"]
            ),
            *dashboard.routes(ctx, self.render, err),
            Mount("/static", app=StaticFiles(directory=HERE / "static"), name="static"),
        ]
