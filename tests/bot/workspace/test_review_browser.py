"""The review page in a real browser (Playwright driving Debian's chromium
against a real uvicorn): a viewer reads, an admin labels, retrains through the
gate and rolls back. Saves docs/screenshots/review.png."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.app import Core
from flows.messages import IncomingMessage
from nlu.parser import Parser
from tests.bot.workspace.conftest import PASSWORD
from tests.bot.workspace.review_fixtures import ID_NUMBER, PHONE, review_core
from tests.bot.workspace.test_workspace_browser import (
    CHROMIUM_ARGS,
    SCREENSHOTS,
    chromium_path,
    serve,
)

playwright_sync = pytest.importorskip("playwright.sync_api")


@pytest.fixture
def rcore(tmp_path: Path, nlu_parser: Parser, model_dir: Path) -> Iterator[Core]:
    core = review_core(tmp_path, model_dir)
    yield core
    core.close()


@pytest.fixture
def live_review(rcore: Core) -> Iterator[str]:
    with serve(rcore) as url:
        yield url


def sign_in(page: object, live: str, name: str) -> None:
    page.goto(live + "/staff/login?next=/staff/review")  # type: ignore[attr-defined]
    page.fill("input[name=username]", name)  # type: ignore[attr-defined]
    page.fill("input[name=password]", PASSWORD)  # type: ignore[attr-defined]
    page.click("button[type=submit]")  # type: ignore[attr-defined]
    page.wait_for_url("**/staff/review")  # type: ignore[attr-defined]


def test_review_page_label_retrain_and_roll_back(rcore: Core, live_review: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for n, text in enumerate(
        [
            "残疾证怎么办理",
            "残疾证怎么办理？",
            "残疾证怎么办理！",
            "那个补贴咋领",
            "那个补贴咋领？",
            f"我身份证{ID_NUMBER}电话{PHONE}，暖气片不热找谁",
        ]
    ):
        rcore.dispatcher.handle(IncomingMessage(channel="shell", user_id=f"r{n}", text=text))

    with playwright_sync.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=chromium_path(), headless=True, args=CHROMIUM_ARGS
        )
        viewer = browser.new_page(viewport={"width": 1366, "height": 768}, locale="zh-CN")
        viewer.set_default_timeout(10_000)
        sign_in(viewer, live_review, "查看员")
        rows = viewer.locator("table.review tr[data-key]")
        assert rows.count() >= 3
        assert rows.first.locator("td.text").inner_text() == "残疾证怎么办理"
        assert rows.first.locator("td").first.inner_text() == "3"
        # The nearest FAQ entries (below the answer threshold) are shown as guesses.
        assert rows.first.locator("td.guesses .faq-guess").count() == 2
        assert viewer.locator("button.label-as").count() == 0  # a viewer reads only
        assert viewer.locator("#retrain").count() == 0
        assert ID_NUMBER not in viewer.content() and PHONE not in viewer.content()
        assert "139****5678" in viewer.content()

        page = browser.new_page(viewport={"width": 1366, "height": 900}, locale="zh-CN")
        page.set_default_timeout(10_000)
        page.on("dialog", lambda dialog: dialog.accept())
        sign_in(page, live_review, "admin")
        page.click("a.chip:has-text('问答没答上')")
        kinds = page.locator("table.review tr[data-key] td:nth-child(3)").all_inner_texts()
        assert kinds and set(kinds) == {"问答"}
        page.click("a.chip:has-text('全部类型')")

        subsidy = page.locator("table.review tr[data-key]", has_text="那个补贴咋领")
        subsidy.locator("select.intent").select_option("service_info")
        subsidy.locator("button[data-action=intent]").click()
        subsidy.wait_for(state="detached")
        heating = page.locator("table.review tr[data-key]", has_text="暖气片")
        heating.locator("button[data-action=new_faq]").click()
        heating.wait_for(state="detached")
        page.reload()
        assert "暖气片不热找谁" in page.locator("#needed").inner_text()
        page.goto(live_review + "/staff/review?status=labelled")
        labelled = page.locator("table.review tr[data-key]", has_text="那个补贴咋领")
        assert "service_info" in labelled.locator("td.label .st").inner_text()

        page.goto(live_review + "/staff/review")
        page.click("#retrain")
        result = page.locator("#retrain-result .gate")
        result.wait_for(timeout=180_000)
        assert "已启用新模型 v2" in result.inner_text(), result.inner_text()
        current = page.locator("table.models tr.current")
        assert current.get_attribute("data-version") == "v2"
        assert page.locator("table.models tr[data-version=v1] button.use-version").count() == 1
        page.screenshot(path=str(SCREENSHOTS / "review.png"), full_page=True)

        page.click("table.models tr[data-version=v1] button.use-version")
        page.wait_for_selector("table.models tr.current[data-version=v1]")
        assert rcore.live is not None and rcore.live.current.model.metadata["version"] == "v1"
        browser.close()
