"""The workspace's JSON API with real HTTP (httpx via Starlette's TestClient)
against the real app on a temp SQLite file: every route, every role."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
from openpyxl import load_workbook
from starlette.testclient import TestClient

from bot.app import Core
from bot.web import create_app
from flows.messages import IncomingMessage
from tests.bot.workspace.conftest import LEGAL, PASSWORD, SECRET, Tickets, add_volunteer, login

GET_ROUTES = (
    "/staff/api/session",
    "/staff/api/tickets",
    "/staff/api/tickets/{t}",
    "/staff/api/tickets/{t}/conversation",
    "/staff/api/tickets/{t}/assignable",
    "/staff/api/stats",
    "/staff/api/volunteers",
)
POST_ROUTES = (
    ("/staff/api/tickets/{t}/messages", {"text": "你好", "internal": True}),
    ("/staff/api/tickets/{t}/status", {"status": "in_progress", "note": "已联系"}),
    ("/staff/api/tickets/{t}/takeover", {}),
    ("/staff/api/tickets/{t}/handback", {}),
)


def outbox_texts(core: Core, user_id: str) -> list[str]:
    return [o.text for o in core.store.list_outbox() if o.user_id == user_id]


def test_every_api_route_needs_a_session(app_client: TestClient, tickets: Tickets) -> None:
    for route in GET_ROUTES:
        assert app_client.get(route.format(t=tickets.legal)).status_code == 401, route
    for route, body in POST_ROUTES:
        res = app_client.post(route.format(t=tickets.legal), json=body)
        assert res.status_code == 401, route
    assert app_client.post("/staff/api/volunteers/VT1/contacted").status_code == 401
    # Pages send people to the sign-in page instead.
    res = app_client.get("/staff/", follow_redirects=False)
    assert res.status_code == 303 and res.headers["location"].startswith("/staff/login")


def test_login_sets_a_signed_httponly_samesite_cookie(app_client: TestClient) -> None:
    wrong = app_client.post(
        "/staff/login", data={"username": "王律师", "password": "nope"}, follow_redirects=False
    )
    assert wrong.status_code == 401 and "set-cookie" not in wrong.headers
    unknown = app_client.post(
        "/staff/login", data={"username": "nobody", "password": PASSWORD}, follow_redirects=False
    )
    assert unknown.status_code == 401
    res = app_client.post(
        "/staff/login", data={"username": "王律师", "password": PASSWORD}, follow_redirects=False
    )
    assert res.status_code == 303
    cookie = res.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=lax" in cookie and "max-age=" in cookie
    session = app_client.get("/staff/api/session").json()
    assert session["username"] == "王律师"
    as_json = app_client.post(
        "/staff/login", json={"username": "王律师", "password": PASSWORD}, follow_redirects=False
    )
    assert as_json.status_code == 303
    assert session["role"] == "staff" and session["department"] == LEGAL
    assert len(session["csrf_token"]) >= 32
    # A forged cookie (right shape, wrong signature) is no session.
    value = app_client.cookies.get("tongxin_staff")
    assert value is not None
    token = value.split(".")[0]
    app_client.cookies.set("tongxin_staff", token + ".forged", path="/staff")
    assert app_client.get("/staff/api/session").status_code == 401


def test_logout_ends_the_session(app_client: TestClient) -> None:
    login(app_client, "admin")
    stolen = dict(app_client.cookies.items())
    assert app_client.post("/staff/logout", follow_redirects=False).status_code == 303
    assert app_client.get("/staff/api/session").status_code == 401
    # The old cookie, replayed, opens nothing: the session row is gone.
    for name, value in stolen.items():
        app_client.cookies.set(name, value, path="/staff")
    assert app_client.get("/staff/api/session").status_code == 401


def test_login_throttled_per_account_and_per_address(app_client: TestClient) -> None:
    for _ in range(5):
        res = app_client.post(
            "/staff/login", data={"username": "李律师", "password": "guess"}, follow_redirects=False
        )
        assert res.status_code == 401
    res = app_client.post(
        "/staff/login", data={"username": "李律师", "password": PASSWORD}, follow_redirects=False
    )
    assert res.status_code == 429 and "retry-after" in res.headers
    assert "set-cookie" not in res.headers
    # Other accounts from the same address still sign in, until the address
    # itself has failed too often.
    login(app_client, "王律师")
    for i in range(25):
        app_client.post(
            "/staff/login",
            data={"username": f"spray{i}", "password": "guess"},
            follow_redirects=False,
        )
    res = app_client.post(
        "/staff/login", data={"username": "调解员", "password": PASSWORD}, follow_redirects=False
    )
    assert res.status_code == 429


def test_ticket_list_is_scoped_masked_and_filtered(as_user: Any, tickets: Tickets) -> None:
    admin, _ = as_user("admin")
    items = admin.get("/staff/api/tickets").json()
    assert {t["id"] for t in items} == {tickets.legal, tickets.mediation}
    for key in ("id", "kind", "status", "channel", "user_id", "phone", "fields"):
        assert all(key in t for t in items)
    legal = next(t for t in items if t["id"] == tickets.legal)
    assert legal["phone"] == "139****5678" and "13912345678" not in json.dumps(items)

    lawyer, _ = as_user("王律师")
    assert [t["id"] for t in lawyer.get("/staff/api/tickets").json()] == [tickets.legal]
    for q in ("王小明", "5678", tickets.legal.lower(), "拖欠工资"):
        found = admin.get("/staff/api/tickets", params={"q": q}).json()
        assert [t["id"] for t in found] == [tickets.legal], q
    assert admin.get("/staff/api/tickets", params={"q": "没有这个"}).json() == []
    by_kind = admin.get("/staff/api/tickets", params={"kind": "dispute_mediation"}).json()
    assert [t["id"] for t in by_kind] == [tickets.mediation]
    by_dept = admin.get("/staff/api/tickets", params={"department": LEGAL}).json()
    assert [t["id"] for t in by_dept] == [tickets.legal]
    assert admin.get("/staff/api/tickets", params={"status": "resolved"}).json() == []
    assert admin.get("/staff/api/tickets", params={"overdue": "1"}).json() == []
    assert admin.get("/staff/api/tickets", params={"status": "bogus"}).status_code == 400


def test_overdue_tickets_come_first_and_are_counted(
    ws_core: Core, as_user: Any, tickets: Tickets
) -> None:
    ws_core.store._exec(
        "UPDATE tickets SET created_at = '2020-01-01T00:00:00.000000+00:00',"
        " due_at = '2020-01-02T00:00:00.000000+00:00' WHERE id = ?",
        (tickets.mediation,),
    )
    admin, _ = as_user("admin")
    items = admin.get("/staff/api/tickets").json()
    assert [t["id"] for t in items] == [tickets.mediation, tickets.legal]
    assert items[0]["overdue"] is True and items[1]["overdue"] is False
    overdue = admin.get("/staff/api/tickets", params={"overdue": "1"}).json()
    assert [t["id"] for t in overdue] == [tickets.mediation]
    newest = admin.get("/staff/api/tickets", params={"order": "newest"}).json()
    assert [t["id"] for t in newest] == [tickets.legal, tickets.mediation]
    assert admin.get("/staff/api/stats").json()["overdue"] == 1


def test_ticket_detail_has_events_and_masked_transcript(as_user: Any, tickets: Tickets) -> None:
    lawyer, _ = as_user("王律师")
    detail = lawyer.get(f"/staff/api/tickets/{tickets.legal}").json()
    assert detail["phone"] == "13912345678"  # in full on the ticket itself
    assert [e["action"] for e in detail["events"]] == ["created"]
    texts = [m["text"] for m in detail["transcript"]]
    assert texts[0].startswith("老板拖欠工资三个月") and "139****5678" in texts[0]
    assert [m["from"] for m in detail["transcript"]] == ["resident", "bot"]
    # Another department's ticket does not exist for this account.
    assert lawyer.get(f"/staff/api/tickets/{tickets.mediation}").status_code == 404
    assert lawyer.get("/staff/api/tickets/TX000000-0000").status_code == 404


def test_messages_internal_stay_inside_public_reach_the_resident(
    ws_core: Core, as_user: Any, tickets: Tickets
) -> None:
    lawyer, csrf = as_user("王律师")
    url = f"/staff/api/tickets/{tickets.legal}/messages"
    assert lawyer.post(url, json={"text": "内部：先核实劳动合同"}).status_code == 403
    res = lawyer.post(
        url, json={"text": "内部：先核实劳动合同", "internal": True}, headers={"X-CSRF-Token": csrf}
    )
    assert res.status_code == 201
    assert outbox_texts(ws_core, "resident1") == []
    res = lawyer.post(
        url,
        json={"text": "请带上工资条周三来工作站", "internal": False},
        headers={"X-CSRF-Token": csrf},
    )
    assert res.status_code == 201
    sent = outbox_texts(ws_core, "resident1")
    assert len(sent) == 1 and "请带上工资条周三来工作站" in sent[0]
    events = ws_core.store.ticket_events(tickets.legal)
    assert [(e.actor, e.action) for e in events[-2:]] == [
        ("王律师", "internal_note"),
        ("王律师", "reply"),
    ]
    # The resident gets it on their channel's next turn (shell delivers in line).
    replies = ws_core.dispatcher.handle(
        IncomingMessage(channel="shell", user_id="resident1", text="好的")
    )
    assert any("请带上工资条" in r.text for r in replies)
    assert not any("核实劳动合同" in r.text for r in replies)
    bad = lawyer.post(url, json={"text": "  ", "internal": True}, headers={"X-CSRF-Token": csrf})
    assert bad.status_code == 400
    wrong_csrf = lawyer.post(
        url, json={"text": "x", "internal": True}, headers={"X-CSRF-Token": "nope"}
    )
    assert wrong_csrf.status_code == 403


def test_viewer_reads_but_never_changes(ws_core: Core, as_user: Any, tickets: Tickets) -> None:
    viewer, csrf = as_user("查看员")
    assert viewer.get("/staff/api/tickets").status_code == 200
    assert viewer.get(f"/staff/api/tickets/{tickets.legal}").status_code == 200
    before = ws_core.store.get_ticket(tickets.legal)
    for route, body in POST_ROUTES:
        res = viewer.post(route.format(t=tickets.legal), json=body, headers={"X-CSRF-Token": csrf})
        assert res.status_code == 403, route
    assert ws_core.store.get_ticket(tickets.legal) == before
    assert outbox_texts(ws_core, "resident1") == []


def test_other_department_cannot_change(ws_core: Core, as_user: Any, tickets: Tickets) -> None:
    mediator, csrf = as_user("调解员")
    before = ws_core.store.get_ticket(tickets.legal)
    for route, body in POST_ROUTES:
        res = mediator.post(
            route.format(t=tickets.legal), json=body, headers={"X-CSRF-Token": csrf}
        )
        assert res.status_code in (403, 404), route
    assert ws_core.store.get_ticket(tickets.legal) == before


def test_status_changes_and_illegal_ones_are_409_with_nothing_changed(
    ws_core: Core, as_user: Any, tickets: Tickets
) -> None:
    lawyer, csrf = as_user("王律师")
    url = f"/staff/api/tickets/{tickets.legal}/status"
    h = {"X-CSRF-Token": csrf}
    assert lawyer.post(url, json={"status": "in_progress"}).status_code == 403
    res = lawyer.post(url, json={"status": "assigned", "assignee": "李律师"}, headers=h)
    assert res.status_code == 200 and res.json()["assignee"] == "李律师"
    assert res.json()["status"] == "assigned"
    res = lawyer.post(url, json={"status": "in_progress", "note": "已约周三面谈"}, headers=h)
    assert res.json()["status"] == "in_progress"
    events_before = ws_core.store.ticket_events(tickets.legal)
    outbox_before = outbox_texts(ws_core, "resident1")
    ticket_before = ws_core.store.get_ticket(tickets.legal)
    for body in (
        {"status": "open", "note": "重开"},
        {"status": "closed", "note": "直接关闭"},
        {"status": "bogus"},
        # An allowed assignee with an illegal status: neither part is applied.
        {"status": "closed", "assignee": "王律师", "note": "x"},
    ):
        res = lawyer.post(url, json=body, headers=h)
        assert res.status_code == 409, body
        assert "error" in res.json()
    assert ws_core.store.get_ticket(tickets.legal) == ticket_before
    assert ws_core.store.ticket_events(tickets.legal) == events_before
    assert outbox_texts(ws_core, "resident1") == outbox_before
    # Only accounts of the ticket's desk can take it: no free-text names.
    desk = lawyer.get(f"/staff/api/tickets/{tickets.legal}/assignable").json()
    assert desk == ["admin", "李律师", "王律师"]  # not the viewer, not another desk
    res = lawyer.post(url, json={"assignee": "随便谁"}, headers=h)
    assert res.status_code == 400
    res = lawyer.post(url, json={"assignee": "调解员"}, headers=h)
    assert res.status_code == 400
    res = lawyer.post(url, json={"status": "resolved", "note": "已追回工资"}, headers=h)
    assert res.json()["status"] == "resolved"
    trail = [(e.actor, e.action, e.to_status) for e in ws_core.store.ticket_events(tickets.legal)]
    assert trail[1:] == [
        ("王律师", "assigned", "assigned"),
        ("王律师", "status", "in_progress"),
        ("王律师", "status", "resolved"),
    ]
    assert any("已追回工资" in t for t in outbox_texts(ws_core, "resident1"))


def test_stats_scoped_to_the_department(as_user: Any, tickets: Tickets) -> None:
    admin, _ = as_user("admin")
    stats = admin.get("/staff/api/stats").json()
    for key in (
        "completion_rate",
        "satisfaction_rate",
        "by_kind",
        "by_status",
        "overdue",
        "median_hours_to_resolve",
    ):
        assert key in stats
    assert stats["by_status"] == {"open": 2}
    assert stats["completion_rate"] == 0
    lawyer, csrf = as_user("王律师")
    lawyer.post(
        f"/staff/api/tickets/{tickets.legal}/status",
        json={"status": "resolved", "note": "已办结"},
        headers={"X-CSRF-Token": csrf},
    )
    mine = lawyer.get("/staff/api/stats").json()
    assert mine["by_kind"] == {"legal_aid": 1} and mine["completion_rate"] == 1.0
    assert mine["median_hours_to_resolve"] is not None


def test_takeover_silences_the_bot_until_handed_back(
    ws_core: Core, as_user: Any, tickets: Tickets
) -> None:
    lawyer, csrf = as_user("王律师")
    other, other_csrf = as_user("李律师")
    h = {"X-CSRF-Token": csrf}
    base = f"/staff/api/tickets/{tickets.legal}"

    def say(text: str) -> list[str]:
        msg = IncomingMessage(channel="shell", user_id="resident1", text=text)
        return [r.text for r in ws_core.dispatcher.handle(msg)]

    res = lawyer.post(base + "/takeover", headers=h)
    assert res.status_code == 200 and res.json()["takeover"] == {"staff": "王律师"}
    # Only one holder at a time.
    taken = other.post(base + "/takeover", headers={"X-CSRF-Token": other_csrf})
    assert taken.status_code == 409
    told = say("你好，还在吗")
    assert any("人工" in t for t in told)  # the resident hears a person answers now
    assert say("我想问问进度") == []  # the bot keeps quiet
    convo = lawyer.get(base + "/conversation").json()
    assert convo["takeover"] == {"staff": "王律师"}
    assert convo["messages"][-1]["text"] == "我想问问进度"
    last = convo["messages"][-1]["id"]
    res = lawyer.post(
        base + "/messages", json={"text": "在的，正在处理", "internal": False}, headers=h
    )
    assert res.status_code == 201
    assert say("谢谢") == ["【工作人员】在的，正在处理"]
    newer = lawyer.get(base + "/conversation", params={"after": last}).json()["messages"]
    assert [(m["from"], m["text"]) for m in newer] == [
        ("staff", "【工作人员】在的，正在处理"),
        ("resident", "谢谢"),
    ]
    assert other.post(base + "/handback", headers={"X-CSRF-Token": other_csrf}).status_code == 409
    assert lawyer.post(base + "/handback", headers=h).status_code == 200
    back = say("你好")
    assert back and any("智能助手" in t for t in back)  # told, and the bot answers again
    assert len(back) >= 2
    actions = [e.action for e in ws_core.store.ticket_events(tickets.legal)]
    assert actions[-3:] == ["takeover", "reply", "handback"]


def test_idle_takeover_ends_by_itself(ws_core: Core, tickets: Tickets) -> None:
    import time

    from flows import takeover

    takeover.take(
        ws_core.store, "shell", "resident1", "王律师", idle_s=0.3, ticket_id=tickets.legal
    )
    msg = IncomingMessage(channel="shell", user_id="resident1", text="你好")
    assert ws_core.dispatcher.handle(msg) == []  # held: a resident's message renews it
    time.sleep(0.4)
    assert takeover.current(ws_core.store, "shell", "resident1") is None
    replies = [r.text for r in ws_core.dispatcher.handle(msg)]
    assert "智能助手" in replies[0] and len(replies) >= 2  # told once, then the bot answers
    again = [r.text for r in ws_core.dispatcher.handle(msg)]
    assert not any("人工服务已结束" in t for t in again)
    last = ws_core.store.ticket_events(tickets.legal)[-1]
    assert (last.actor, last.action) == ("system", "handback")


def test_volunteers_list_and_mark_contacted(ws_core: Core, as_user: Any) -> None:
    vid = add_volunteer(ws_core, "李四", "家电维修")
    admin, csrf = as_user("admin")
    rows = admin.get("/staff/api/volunteers").json()
    assert [r["id"] for r in rows] == [vid] and rows[0]["contacted_at"] is None
    assert admin.get("/staff/api/volunteers", params={"team": "理发"}).json() == []
    url = f"/staff/api/volunteers/{vid}/contacted"
    assert admin.post(url).status_code == 403
    assert admin.post(url, headers={"X-CSRF-Token": csrf}).status_code == 200
    assert admin.get("/staff/api/volunteers").json()[0]["contacted_by"] == "admin"
    missing = admin.post("/staff/api/volunteers/VT0-0/contacted", headers={"X-CSRF-Token": csrf})
    assert missing.status_code == 404
    lawyer, _ = as_user("王律师")
    assert lawyer.get("/staff/api/volunteers").status_code == 403


def test_exports_have_chinese_headers(as_user: Any, tickets: Tickets) -> None:
    admin, _ = as_user("admin")
    res = admin.get("/staff/export/tickets.csv", params={"kind": "legal_aid"})
    assert res.status_code == 200 and res.headers["content-type"].startswith("text/csv")
    text = res.content.decode("utf-8-sig")
    lines = text.strip().splitlines()
    assert lines[0].startswith("单号,类型,状态,受理部门")
    assert len(lines) == 2 and tickets.legal in lines[1] and "法律咨询" in lines[1]
    assert "13912345678" not in text
    res = admin.get("/staff/export/tickets.xlsx")
    sheet = load_workbook(io.BytesIO(res.content)).active
    assert sheet is not None
    rows = list(sheet.iter_rows(values_only=True))
    assert rows[0][:3] == ("单号", "类型", "状态") and len(rows) == 3
    vol = admin.get("/staff/export/volunteers.xlsx")
    assert vol.status_code == 200
    lawyer, _ = as_user("王律师")
    only = lawyer.get("/staff/export/tickets.csv").content.decode("utf-8-sig")
    assert tickets.legal in only and tickets.mediation not in only


def test_pages_render_for_each_role(as_user: Any, tickets: Tickets) -> None:
    for name in ("admin", "王律师", "查看员"):
        client, _ = as_user(name)
        queue = client.get("/staff/")
        assert queue.status_code == 200 and tickets.legal in queue.text and "待受理" in queue.text
        page = client.get(f"/staff/tickets/{tickets.legal}")
        assert page.status_code == 200 and "与居民的对话" in page.text
        assert ("回复居民" in page.text) == (name != "查看员")
    lawyer, _ = as_user("王律师")
    assert lawyer.get(f"/staff/tickets/{tickets.mediation}").status_code == 404


def test_without_secret_key_the_workspace_says_what_is_missing(
    ws_core: Core, tickets: Tickets
) -> None:
    import dataclasses

    off = dataclasses.replace(
        ws_core, settings=dataclasses.replace(ws_core.settings, secret_key=None)
    )
    with TestClient(create_app(off, [])) as client:
        res = client.get("/staff/api/tickets")
        assert res.status_code == 503 and "TONGXIN_SECRET_KEY" in res.json()["error"]
        assert "TONGXIN_SECRET_KEY" in client.get("/staff/").text


@pytest.mark.parametrize("secret", [SECRET])
def test_changing_the_secret_key_ends_sessions(ws_core: Core, secret: str) -> None:
    import dataclasses

    with TestClient(create_app(ws_core, [])) as client:
        login(client, "admin")
        rotated = dataclasses.replace(
            ws_core, settings=dataclasses.replace(ws_core.settings, secret_key=secret + "-new")
        )
        with TestClient(create_app(rotated, []), cookies=dict(client.cookies.items())) as again:
            assert again.get("/staff/api/session").status_code == 401


def test_queue_filters_by_date_assignee_and_pages(
    ws_core: Core, as_user: Any, tickets: Tickets
) -> None:
    ws_core.store._exec(
        "UPDATE tickets SET created_at = '2026-03-10T03:00:00.000000+00:00' WHERE id = ?",
        (tickets.mediation,),
    )
    admin, csrf = as_user("admin")
    admin.post(
        f"/staff/api/tickets/{tickets.legal}/status",
        json={"assignee": "王律师"},
        headers={"X-CSRF-Token": csrf},
    )
    get = admin.get
    # Local (China) days: 03:00 UTC on 10 March is 11:00 that day in Beijing.
    day = get("/staff/api/tickets", params={"since": "2026-03-10", "until": "2026-03-10"})
    assert [t["id"] for t in day.json()] == [tickets.mediation]
    assert get("/staff/api/tickets", params={"until": "2026-03-09"}).json() == []
    assert get("/staff/api/tickets", params={"since": "tomorrow"}).status_code == 400
    mine = get("/staff/api/tickets", params={"assignee": "王律师"}).json()
    assert [t["id"] for t in mine] == [tickets.legal]
    nobody = get("/staff/api/tickets", params={"assignee": "-"}).json()
    assert [t["id"] for t in nobody] == [tickets.mediation]
    first = get("/staff/api/tickets", params={"order": "newest", "limit": 1})
    assert first.headers["x-total-count"] == "2"
    second = get("/staff/api/tickets", params={"order": "newest", "limit": 1, "offset": 1})
    assert [t["id"] for t in first.json() + second.json()] == [tickets.legal, tickets.mediation]
    page = get("/staff/", params={"assignee": "王律师"}).text
    assert tickets.legal in page and tickets.mediation not in page


def test_nested_phones_are_masked_in_lists(ws_core: Core, as_user: Any) -> None:
    ws_core.store.create_ticket(
        kind="human_handoff",
        department="社区综合服务台",
        channel="shell",
        user_id="r9",
        phone=None,
        fields={"conversation": [{"from": "user", "text": "我的电话13912340000"}]},
    )
    admin, _ = as_user("admin")
    listed = json.dumps(admin.get("/staff/api/tickets").json(), ensure_ascii=False)
    assert "13912340000" not in listed and "139****0000" in listed


def test_sessions_expire(ws_core: Core) -> None:
    import dataclasses
    import time

    short = dataclasses.replace(
        ws_core, settings=dataclasses.replace(ws_core.settings, session_hours=1.5 / 3600)
    )
    with TestClient(create_app(short, [])) as client:
        login(client, "admin")
        kept = client.cookies.get("tongxin_staff")
        assert kept is not None
        time.sleep(1.7)
        # Even a client that keeps the cookie past its Max-Age is refused.
        client.cookies.set("tongxin_staff", kept, path="/staff")
        assert client.get("/staff/api/session").status_code == 401


def test_pages_forbid_framing_and_caching(app_client: TestClient) -> None:
    for url in ("/staff/login", "/staff/api/session", "/staff/static/app.js"):
        res = app_client.get(url)
        assert res.headers["x-frame-options"] == "DENY", url
        assert "default-src 'self'" in res.headers["content-security-policy"]
        assert res.headers["cache-control"] == "no-store"


def test_a_failed_update_shows_its_reason_on_the_ticket(
    ws_core: Core, as_user: Any, tickets: Tickets
) -> None:
    """E.g. past WeChat's 48 hours with no template configured (the WeChat
    outbox worker writes this reason; tests/bot/channels/wechat/test_wechat_templates.py)."""
    store = ws_core.store
    row = store.enqueue("wechat", "oResident2", "已办结", ticket_id=tickets.mediation)
    reason = "45015 outside WeChat's 48-hour reply window; no template message configured"
    store.mark_outbox_failed(row, reason, retry_in_s=None)
    mediator, _ = as_user("调解员")
    detail = mediator.get(f"/staff/api/tickets/{tickets.mediation}").json()
    assert [(d["status"], d["last_error"]) for d in detail["deliveries"]] == [("failed", reason)]
    page = mediator.get(f"/staff/tickets/{tickets.mediation}").text
    assert "未送达" in page and "no template message configured" in page
