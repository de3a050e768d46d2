"""The workspace in a real browser: Playwright driving Debian's chromium
against the app under a real uvicorn, while a resident talks to the bot on
the shell channel. Saves the screenshots the README shows."""

from __future__ import annotations

import shutil
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import uvicorn
from openpyxl import load_workbook

from bot.app import Core
from bot.web import create_app
from flows.messages import IncomingMessage
from tests.bot.workspace.conftest import LEGAL, MEDIATION, PASSWORD, add_volunteer

playwright_sync = pytest.importorskip("playwright.sync_api")

SCREENSHOTS = Path(__file__).resolve().parents[3] / "docs" / "screenshots"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]


def chromium_path() -> str:
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    pytest.fail(
        "Debian's chromium is missing: scripts/test.sh installs it (apt-get install chromium)"
    )


@pytest.fixture
def live(ws_core: Core) -> Iterator[str]:
    with serve(ws_core) as url:
        yield url


@contextmanager
def serve(core: Core) -> Iterator[str]:
    """The app of `core` under a real uvicorn on a free port; yields its URL."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(create_app(core, []), log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.02)
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    server.should_exit = True
    thread.join(10)


def resident(core: Core, user_id: str) -> Callable[[str], list[str]]:
    """The resident's side: one message on the shell channel, the replies back
    (the shell delivers queued staff messages in line with the bot's)."""

    def say(text: str) -> list[str]:
        msg = IncomingMessage(channel="shell", user_id=user_id, text=text)
        return [r.text for r in core.dispatcher.handle(msg)]

    return say


def seed_queue(core: Core) -> None:
    store = core.store
    for kind, dept, user, phone, fields in (
        (
            "legal_aid",
            LEGAL,
            "r-a",
            "13911112222",
            {"description": "租房押金不退", "name": "陈先生"},
        ),
        (
            "dispute_mediation",
            MEDIATION,
            "r-b",
            "13733334444",
            {"description": "楼上装修噪音", "other_party": "邻居"},
        ),
        (
            "report_issue",
            "网格服务站（城管、物业、消防联动）",
            "r-c",
            None,
            {"description": "路灯坏了", "place": "幸福路3号"},
        ),
        (
            "microloan",
            "创业社区金融服务站",
            "r-d",
            "13655556666",
            {"business": "小吃店", "amount": 50000},
        ),
    ):
        store.create_ticket(
            kind=kind, department=dept, channel="shell", user_id=user, phone=phone, fields=fields
        )
    # One overdue ticket, so the queue shows the flag first.
    old, _ = store.create_ticket(
        kind="report_issue",
        department="网格服务站（城管、物业、消防联动）",
        channel="shell",
        user_id="r-e",
        phone=None,
        fields={"description": "消防通道被车堵死", "place": "阳光小区"},
    )
    store._exec(
        "UPDATE tickets SET created_at = '2026-11-20T02:00:00.000000+00:00',"
        " due_at = '2026-11-23T09:30:00.000000+00:00' WHERE id = ?",
        (old.id,),
    )


def test_staff_day_in_the_browser(ws_core: Core, live: str, tmp_path: Path) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    seed_queue(ws_core)
    say = resident(ws_core, "resident1")
    say("你好")
    say("老板拖欠工资三个月，怎么办")
    handoff = say("转人工")
    ticket = next(t for t in ws_core.store.list_tickets(user_id="resident1"))
    assert ticket.kind == "human_handoff" and ticket.id in handoff[-1]

    with playwright_sync.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=chromium_path(), headless=True, args=CHROMIUM_ARGS
        )
        page = browser.new_page(
            viewport={"width": 1366, "height": 768}, accept_downloads=True, locale="zh-CN"
        )
        page.set_default_timeout(10_000)

        # Sign in (the queue sends a stranger to the sign-in page first).
        page.goto(live + "/staff/")
        assert "/staff/login" in page.url
        page.fill("input[name=username]", "admin")
        page.fill("input[name=password]", "wrong password")
        page.click("button[type=submit]")
        assert page.locator(".error").inner_text() == "用户名或密码不正确。"
        page.fill("input[name=username]", "admin")
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url(live + "/staff/")
        rows = page.locator("table.queue tbody tr")
        assert rows.count() == 6
        # Overdue first, flagged.
        assert "超时" in rows.nth(0).inner_text() and "消防通道" in rows.nth(0).inner_text()
        assert "待受理 6" in page.locator(".counts").inner_text().replace("\n", " ")
        page.screenshot(path=str(SCREENSHOTS / "queue.png"))

        # Filter by kind, then search by phone.
        page.select_option("select[name=kind]", "human_handoff")
        page.click(".filters button[type=submit]")
        page.wait_for_url("**kind=human_handoff**")
        assert rows.count() == 1 and ticket.id in rows.nth(0).inner_text()
        page.goto(live + "/staff/?q=13733334444")
        assert rows.count() == 1 and "楼上装修噪音" in rows.nth(0).inner_text()
        assert "137****4444" in rows.nth(0).inner_text()

        # Export the filtered queue as Excel.
        page.goto(live + "/staff/?kind=legal_aid")
        with page.expect_download() as download_info:
            page.click("#export-xlsx")
        saved = tmp_path / "export.xlsx"
        download_info.value.save_as(saved)
        sheet = load_workbook(saved).active
        assert sheet is not None
        exported = list(sheet.iter_rows(values_only=True))
        assert exported[0][:4] == ("单号", "类型", "状态", "受理部门")
        assert [r[1] for r in exported[1:]] == ["法律咨询"]

        # Open the hand-off ticket: the conversation behind it is there.
        page.goto(live + "/staff/?kind=human_handoff")
        page.click(f"text={ticket.id}")
        page.wait_for_url(f"**/staff/tickets/{ticket.id}")
        transcript = page.locator("#transcript")
        assert "老板拖欠工资三个月" in transcript.inner_text()
        assert "已为您转接人工服务" in transcript.inner_text()

        # An internal note, then a public reply.
        page.fill("#message-form textarea", "内部：疑似欠薪，转法律服务工作站跟进")
        page.click("#message-form button[type=submit]")
        page.wait_for_selector(".ev-internal_note")
        page.fill("#message-form textarea", "您好，我们已收到，律师明天上午联系您")
        page.check("#message-form input[value=false]")
        page.click("#message-form button[type=submit]")
        page.wait_for_selector(".ev-reply")
        pending = [o.text for o in ws_core.store.list_outbox() if o.user_id == "resident1"]
        assert len(pending) == 1 and "律师明天上午联系您" in pending[0]
        assert not any("疑似欠薪" in t for t in pending)
        page.screenshot(path=str(SCREENSHOTS / "ticket.png"), full_page=True)

        # Live takeover while the resident writes.
        page.click("#takeover")
        page.wait_for_selector("text=admin 正在人工接管")
        told = say("请问律师什么时候联系我")
        assert any("律师明天上午联系您" in t for t in told)  # the earlier reply, delivered
        assert any("人工" in t for t in told)  # told a person answers now
        assert not any("法律" in t and "回复" in t for t in told[2:])
        page.wait_for_selector("#transcript >> text=请问律师什么时候联系我")
        assert say("我下午有空") == []  # the bot keeps quiet
        page.wait_for_selector("#transcript >> text=我下午有空")
        page.fill("#message-form textarea", "好的，下午三点律师给您打电话")
        page.check("#message-form input[value=false]")
        page.click("#message-form button[type=submit]")
        page.wait_for_selector("#transcript >> text=【工作人员】好的，下午三点律师给您打电话")
        assert say("谢谢") == ["【工作人员】好的，下午三点律师给您打电话"]
        page.wait_for_selector("#transcript >> text=谢谢")
        page.screenshot(path=str(SCREENSHOTS / "takeover.png"), full_page=True)

        # Hand back: the bot answers again.
        page.click("#handback")
        page.wait_for_selector("text=由智能助手回复")
        back = say("初心驿站是干什么的")
        assert any("智能助手" in t for t in back) and len(back) >= 2

        # Volunteers: filter by team, mark as contacted.
        vid = add_volunteer(ws_core, "李四", "家电维修")
        add_volunteer(ws_core, "周阿姨", "理发", phone="13800003333")
        page.goto(live + "/staff/volunteers")
        page.select_option("select[name=team]", "家电维修")
        page.click(".filters button[type=submit]")
        page.wait_for_url("**team=**")
        assert page.locator("table.queue tbody tr").count() == 1
        page.click("button.contact")
        page.wait_for_selector("text=已联系（admin")
        contacted = ws_core.store._one(
            "SELECT contacted_by FROM volunteer_contacts WHERE volunteer_id = ?", (vid,)
        )
        assert contacted == {"contacted_by": "admin"}

        # A phone-sized screen still reads.
        phone = browser.new_page(viewport={"width": 390, "height": 844}, locale="zh-CN")
        phone.context.add_cookies(page.context.cookies())
        phone.goto(live + "/staff/")
        assert phone.locator("table.queue tbody tr").count() == 6
        phone.screenshot(path=str(SCREENSHOTS / "queue-phone.png"))
        browser.close()
