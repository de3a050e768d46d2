"""`/staff/api/`: the JSON the pages use and outside checks call (CONTRACT)."""

from __future__ import annotations

from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bot.workspace.dashboard import stats_filter
from bot.workspace.http import Call, Context, api
from bot.workspace.service import MAX_PAGE_SIZE, filter_from_query
from flows.staff import StaffInputError


def _int(raw: str | None, default: int, *, lo: int, hi: int) -> int:
    if raw in (None, ""):
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise StaffInputError(f"expected a whole number, got {raw!r}") from exc
    return max(lo, min(hi, value))


def session(call: Call) -> Response:
    u = call.user
    return JSONResponse(
        {
            "username": u.username,
            "role": u.role,
            "department": u.department,
            "csrf_token": u.csrf_token,
        }
    )


def tickets(call: Call) -> Response:
    query = call.query
    f = filter_from_query(query)
    limit = _int(query.get("limit"), 0, lo=0, hi=MAX_PAGE_SIZE) or None
    offset = _int(query.get("offset"), 0, lo=0, hi=10**9)
    order = "newest" if query.get("order") == "newest" else "overdue"
    page = call.workspace.queue(
        call.user, f, order=order, limit=limit, offset=offset, with_counts=False
    )
    items = [call.workspace.list_item(t, t.id in page.overdue_ids) for t in page.tickets]
    return JSONResponse(items, headers={"X-Total-Count": str(page.total)})


def ticket(call: Call) -> Response:
    return JSONResponse(call.workspace.detail(call.user, call.path("ticket_id")))


def conversation(call: Call) -> Response:
    """New messages since `after` (the page polls this) and who holds the chat."""
    ws = call.workspace
    t = ws.ticket(call.user, call.path("ticket_id"))
    after = _int(call.query.get("after"), 0, lo=0, hi=2**62)
    held = ws.holder(t)
    return JSONResponse(
        {
            "messages": ws.transcript(t, after=after),
            "takeover": None if held is None else {"staff": held.staff},
        }
    )


def messages(call: Call) -> Response:
    body = call.json()
    internal = body.get("internal", False)
    if not isinstance(internal, bool):
        raise StaffInputError("internal must be true or false")
    text = body.get("text")
    if not isinstance(text, str):
        raise StaffInputError("text must be a string")
    result = call.workspace.post_message(call.user, call.path("ticket_id"), text, internal=internal)
    return JSONResponse(result, status_code=201)


def status(call: Call) -> Response:
    body = call.json()
    values = {}
    for name in ("status", "note", "assignee"):
        value = body.get(name)
        if value is not None and not isinstance(value, str):
            raise StaffInputError(f"{name} must be a string")
        values[name] = value
    ws = call.workspace
    changed = ws.change(
        call.user,
        call.path("ticket_id"),
        status=values["status"],
        note=values["note"],
        assignee=values["assignee"],
    )
    overdue = ws.ws.is_overdue(changed, ws.overdue_before())
    return JSONResponse(ws.list_item(changed, overdue) | {"phone": changed.phone})


def take_over(call: Call) -> Response:
    held = call.workspace.take_over(call.user, call.path("ticket_id"))
    return JSONResponse({"takeover": {"staff": held.staff}})


def hand_back(call: Call) -> Response:
    call.workspace.hand_back(call.user, call.path("ticket_id"))
    return JSONResponse({"takeover": None})


def stats(call: Call) -> Response:
    """Query `since`, `until` (YYYY-MM-DD), `days`, `department`; none: all time."""
    f = stats_filter(call.query, default_days=None)
    return JSONResponse(call.workspace.stats(call.user, f))


def volunteers(call: Call) -> Response:
    rows = call.workspace.volunteers(call.user, call.query)
    return JSONResponse(rows)


def contacted(call: Call) -> Response:
    vid = call.path("volunteer_id")
    if not call.workspace.mark_contacted(call.user, vid):
        return JSONResponse({"error": f"no volunteer signup {vid}"}, status_code=404)
    return JSONResponse({"id": vid, "contacted_by": call.user.username})


def assignable(call: Call) -> Response:
    t = call.workspace.ticket(call.user, call.path("ticket_id"))
    return JSONResponse(call.workspace.staff_for(t.department))


def routes(ctx: Context) -> list[Route]:
    tid = "/tickets/{ticket_id}"
    return [
        Route("/session", api(ctx, session), methods=["GET"]),
        Route("/tickets", api(ctx, tickets), methods=["GET"]),
        Route(tid, api(ctx, ticket), methods=["GET"]),
        Route(tid + "/conversation", api(ctx, conversation), methods=["GET"]),
        Route(tid + "/assignable", api(ctx, assignable), methods=["GET"]),
        Route(tid + "/messages", api(ctx, messages, change=True), methods=["POST"]),
        Route(tid + "/status", api(ctx, status, change=True), methods=["POST"]),
        Route(tid + "/takeover", api(ctx, take_over, change=True), methods=["POST"]),
        Route(tid + "/handback", api(ctx, hand_back, change=True), methods=["POST"]),
        Route("/stats", api(ctx, stats), methods=["GET"]),
        Route("/volunteers", api(ctx, volunteers), methods=["GET"]),
        Route(
            "/volunteers/{volunteer_id}/contacted",
            api(ctx, contacted, change=True),
            methods=["POST"],
        ),
    ]
