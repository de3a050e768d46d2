"""`tongxin check-data --launch`: every placeholder fact, unconfigured template
and missing setting of the channels that are on, until none is left."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.cli.main import main
from flows.paths import default_data_dir

CHANNEL_ENV = (
    "TONGXIN_WECHAT_TOKEN",
    "TONGXIN_WECHAT_APPID",
    "TONGXIN_WECHAT_SECRET",
    "TONGXIN_WECHAT_AES_KEY",
    "TONGXIN_TELEGRAM_TOKEN",
    "TONGXIN_TELEGRAM_WEBHOOK_SECRET",
    "TONGXIN_STAFF_CHAT_ID",
    "TONGXIN_STAFF_USER_IDS",
    "TONGXIN_SECRET_KEY",
    "TONGXIN_WECOM_WEBHOOK_URL",
    "TONGXIN_PUBLIC_URL",
    "TONGXIN_DATA_DIR",
)


@pytest.fixture(autouse=True)
def no_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in CHANNEL_ENV:
        monkeypatch.delenv(name, raising=False)


def placeholders(node: Any, prefix: str = "") -> list[str]:
    """The facts.yml entries marked placeholder, read straight from the YAML."""
    if isinstance(node, dict) and node.get("placeholder") is True:
        return [prefix.rstrip(".")]
    if isinstance(node, dict):
        return [n for k, v in node.items() for n in placeholders(v, f"{prefix}{k}.")]
    return []


def launch_lines(out: str) -> list[str]:
    return [line for line in out.splitlines() if line.startswith("launch: ")]


def test_launch_lists_every_gap_and_fails(monkeypatch: pytest.MonkeyPatch, capsys: Any) -> None:
    monkeypatch.setenv("TONGXIN_WECHAT_TOKEN", "tok")
    assert main(["check-data", "--launch", "--quiet"]) == 1
    captured = capsys.readouterr()
    lines = launch_lines(captured.out)
    facts = placeholders(yaml.safe_load((default_data_dir() / "facts.yml").read_text("utf-8")))
    assert len(facts) >= 40
    assert sorted(line.split(": ")[2] for line in lines if line.startswith("launch: fact: ")) == (
        sorted(facts)
    )
    assert any(line.startswith("launch: template: default: template_id") for line in lines)
    assert any(line.startswith("launch: menu: 百姓说事云") for line in lines)
    missing = {line.split(": ")[2] for line in lines if line.startswith("launch: setting: ")}
    assert {"TONGXIN_WECHAT_APPID", "TONGXIN_WECHAT_SECRET", "TONGXIN_WECHAT_AES_KEY"} <= missing
    assert "TONGXIN_TELEGRAM_WEBHOOK_SECRET" not in missing  # Telegram is off
    assert f"launch: {len(lines)} item(s) to fill in" in captured.err


def test_plain_check_data_warns_with_the_count(capsys: Any) -> None:
    assert main(["check-data", "--quiet"]) == 0
    err = capsys.readouterr().err
    assert "warning: launch: " in err and "check-data --launch" in err
    assert "check-data: ok" in err


def test_launch_passes_once_everything_is_filled_in(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    data = tmp_path / "data"
    shutil.copytree(default_data_dir(), data)
    facts_path = data / "facts.yml"

    def fill(node: Any) -> Any:
        if isinstance(node, dict) and node.get("placeholder") is True:
            return {"value": "已核实的值", "source": "测试"}
        if isinstance(node, dict):
            return {k: fill(v) for k, v in node.items()}
        return node

    facts = fill(yaml.safe_load(facts_path.read_text("utf-8")))
    facts_path.write_text(yaml.safe_dump(facts, allow_unicode=True), encoding="utf-8")
    templates = data / "wechat_templates.yml"
    raw = yaml.safe_load(templates.read_text("utf-8"))
    raw["templates"]["default"]["template_id"] = "TEMPLATE_ID_1"
    templates.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    menu = data / "wechat_menu.yml"
    menu.write_text(
        menu.read_text("utf-8").replace(
            'url: "https://example.invalid/baixing", placeholder: true',
            'url: "https://baixing.example.gov.cn"',
        ),
        encoding="utf-8",
    )
    for name, value in {
        "TONGXIN_DATA_DIR": str(data),
        "TONGXIN_WECHAT_TOKEN": "tok",
        "TONGXIN_WECHAT_APPID": "wx1",
        "TONGXIN_WECHAT_SECRET": "s",
        "TONGXIN_WECHAT_AES_KEY": "k" * 43,
        "TONGXIN_SECRET_KEY": "x" * 40,
        "TONGXIN_WECOM_WEBHOOK_URL": "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=k",
        "TONGXIN_PUBLIC_URL": "https://tongxin.example.gov.cn",
    }.items():
        monkeypatch.setenv(name, value)
    assert main(["check-data", "--launch", "--quiet"]) == 0
    captured = capsys.readouterr()
    assert launch_lines(captured.out) == []
    assert "launch: nothing left to fill in" in captured.err
