"""The dashboard, the monthly report and the stats API: the figures a desk
head reads, filtered by department and dates, as JSON, in a real browser, as
a printable page and as Excel."""

from __future__ import annotations

import io
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from openpyxl import load_workbook

from bot.app import Core
from flows import staff
from flows.stats import local_today
from tests.bot.workspace.conftest import LEGAL, MEDIATION, PASSWORD, Tickets
from tests.bot.workspace.test_workspace_browser import (  # noqa: F401 - `live` is a fixture
    CHROMIUM_ARGS,
    SCREENSHOTS,
    chromium_path,
    live,
    resident,
)

playwright_sync = pytest.importorskip("playwright.sync_api")
CHARTS = ("per_day", "rates", "months", "medians", "overdue", "topics")


def seed(core: Core) -> None:
    """Five legal tickets (two resolved, one answered 满意 by its resident
    through the bot, one overdue) and two mediation tickets (one cancelled)."""
    store = core.store
    today = local_today()
    made = []
    for i, (kind, dept) in enumerate(
        [("legal_aid", LEGAL)] * 5 + [("dispute_mediation", MEDIATION)] * 2
    ):
        ticket, _ = store.create_ticket(
            kind=kind,
            department=dept,
            channel="shell",
            user_id=f"r{i}",
            phone=None,
            fields={"description": "欠薪" if dept == LEGAL else "噪音"},
        )
        day = (today - timedelta(days=i * 3)).isoformat()
        store._exec("UPDATE tickets SET created_day = ? WHERE id = ?", (day, ticket.id))
        made.append(ticket.id)
    staff.resolve_ticket(store, core.replies, made[0], "已追回工资", "王律师")
    staff.resolve_ticket(store, core.replies, made[1], "已答复", "王律师")
    staff.update_ticket(store, core.replies, made[6], "cancelled", "居民撤回", "调解员")
    store._exec(
        "UPDATE tickets SET due_at = '2026-01-01T00:00:00.000000+00:00' WHERE id = ?",
        (made[2],),
    )
    say = resident(core, "r0")
    assert any("感谢您的评价" in t for t in say("挺满意的"))
    say("法律援助怎么申请")


def test_stats_api_takes_the_dashboard_filters(
    ws_core: Core, as_user: Any, tickets: Tickets
) -> None:
    admin, _ = as_user("admin")
    assert admin.get("/staff/api/stats", params={"department": MEDIATION}).json()["total"] == 1
    today = local_today().isoformat()
    assert admin.get("/staff/api/stats", params={"since": today}).json()["total"] == 2
    bad = admin.get("/staff/api/stats", params={"since": "2026-13-01"})
    assert bad.status_code == 400 and "2026-12-01" in bad.text
    later = admin.get("/staff/api/stats", params={"since": today, "until": "2020-01-01"})
    assert later.status_code == 400


def test_monthly_report_as_excel(ws_core: Core, as_user: Any) -> None:
    seed(ws_core)
    admin, _ = as_user("admin")
    month = local_today().strftime("%Y-%m")
    page = admin.get("/staff/report", params={"month": month})
    assert page.status_code == 200 and f"{month} 服务月报" in page.text
    res = admin.get("/staff/export/report.xlsx", params={"month": month})
    assert res.status_code == 200
    sheet = load_workbook(io.BytesIO(res.content)).active
    assert sheet is not None
    rows = [r for r in sheet.iter_rows(values_only=True) if any(c is not None for c in r)]
    assert f"{month} 服务月报" in str(rows[0][0])
    header = rows[1]
    assert header[:5] == ("部门", "工单数", "已办结", "办结率", "满意率")
    total = next(r for r in rows if r[0] == "合计")
    month_tickets = admin.get(
        "/staff/api/stats", params={"since": f"{month}-01", "until": local_today().isoformat()}
    ).json()
    assert total[1] == month_tickets["total"]
    assert total[3] == f"{month_tickets['completion_rate']:.1%}"


def test_dashboard_in_the_browser(ws_core: Core, live: str) -> None:  # noqa: F811 - the fixture
    seed(ws_core)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with playwright_sync.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=chromium_path(), headless=True, args=CHROMIUM_ARGS
        )
        page = browser.new_page(viewport={"width": 1366, "height": 900}, locale="zh-CN")
        page.set_default_timeout(10_000)
        errors: list[str] = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        requests: list[str] = []
        page.on("request", lambda r: requests.append(r.url))
        page.goto(live + "/staff/login?next=/staff/dashboard")
        page.fill("input[name=username]", "admin")
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url(live + "/staff/dashboard")

        for name in CHARTS:
            chart = page.locator(f"#chart-{name} svg")
            assert chart.count() == 1
            box = chart.bounding_box()
            assert box is not None and box["width"] > 300 and box["height"] > 150
        # Drawn: the per-day chart has a filled area per kind; the legend names them.
        per_day = page.locator("#chart-per_day")
        assert per_day.locator("path.line").count() >= 2
        assert "法律咨询" in per_day.inner_text() and "矛盾调解" in per_day.inner_text()
        assert page.locator("#fig-total b").inner_text() == "7"
        # 2 resolved of 6 not cancelled; 1 answer, satisfied.
        assert page.locator("#fig-completion b").inner_text() == "33.3%"
        assert page.locator("#fig-satisfaction b").inner_text() == "100.0%"
        assert "1 份回访答复" in page.locator("#fig-satisfaction").inner_text()
        assert page.locator("#fig-overdue b").inner_text() == "1"
        before = per_day.inner_html()
        page.screenshot(path=str(SCREENSHOTS / "dashboard.png"), full_page=True)

        # Filter to the mediation room: figures and charts change.
        page.select_option("select[name=department]", MEDIATION)
        page.click("#dashboard-filters button[type=submit]")
        page.wait_for_url("**department=**")
        assert page.locator("#fig-total b").inner_text() == "2"
        assert page.locator("#fig-completion b").inner_text() == "0.0%"
        after = page.locator("#chart-per_day")
        assert after.inner_html() != before and "法律咨询" not in after.inner_text()
        assert page.locator("#by-department tbody tr").count() == 1

        # The last 90 days, then the printable report.
        page.select_option("select[name=days]", "90")
        page.click("#dashboard-filters button[type=submit]")
        page.wait_for_url("**days=90**")
        assert page.locator("#chart-per_day svg").count() == 1
        page.goto(live + "/staff/report")
        assert "服务月报" in page.locator("h1").inner_text()
        assert page.locator(".report table.queue tbody tr").count() >= 1

        # Nothing was fetched from elsewhere, and the page's policy let the charts' styles in.
        assert all(u.startswith(live) for u in requests), requests
        assert not [e for e in errors if "Content Security Policy" in e], errors
        browser.close()


def test_a_staff_member_sees_their_own_desk_only(ws_core: Core, as_user: Any) -> None:
    seed(ws_core)
    mediator, _ = as_user("调解员")
    page = mediator.get("/staff/dashboard")
    assert page.status_code == 200
    assert LEGAL not in page.text.split("<h2>各部门</h2>")[1]
    assert mediator.get("/staff/api/stats").json()["total"] == 2


def test_dashboard_refuses_a_bad_date(ws_core: Core, as_user: Any, tmp_path: Path) -> None:
    admin, _ = as_user("admin")
    res = admin.get("/staff/dashboard", params={"since": "yesterday"})
    assert res.status_code == 400 and "2026-12-01" in res.text


def test_the_queue_flags_answers_and_escalations(ws_core: Core, as_user: Any) -> None:
    seed(ws_core)
    [answered] = [t for t in ws_core.store.list_tickets() if t.satisfaction]
    ws_core.store._exec(
        "UPDATE tickets SET escalated_at = '2026-11-30T00:00:00+00:00' WHERE id = ?",
        (answered.id,),
    )
    admin, _ = as_user("admin")
    queue = admin.get("/staff/", params={"status": "resolved"}).text
    [row] = [r for r in queue.split("<tr")[1:] if answered.id in r]
    assert "督办" in row and "满意" in row
    detail = admin.get(f"/staff/api/tickets/{answered.id}").json()
    assert detail["satisfaction"] == "satisfied" and detail["escalated_at"]
    assert "satisfaction" in [e["action"] for e in detail["events"]]
