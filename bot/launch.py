"""What is still missing before going live (`tongxin check-data --launch`):
facts still marked placeholder, WeChat menu buttons still placeholders,
template messages not configured, and settings the channels that are on need.

Each gap is one line an operator can act on; none of this guesses a value.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from bot.channels.wechat.templates import TEMPLATES_FILE, TemplateBook, TemplateDataError
from flows.faq_data import load_facts


@dataclass(frozen=True)
class LaunchGap:
    area: str  # fact, menu, template, setting
    item: str
    what: str

    def __str__(self) -> str:
        return f"{self.area}: {self.item}: {self.what}"


def fact_gaps(data_dir: Path) -> list[LaunchGap]:
    facts, _ = load_facts(data_dir / "facts.yml")
    return [
        LaunchGap("fact", f.name, f.note or "placeholder: fill in the confirmed value")
        for f in facts.by_name.values()
        if not f.known
    ]


def menu_gaps(data_dir: Path) -> list[LaunchGap]:
    path = data_dir / "wechat_menu.yml"
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError):
        return []  # check-data reports an unreadable menu
    gaps = []
    for top in raw.get("button") or []:
        for item in [top, *(top.get("sub_button") or [])] if isinstance(top, dict) else []:
            if isinstance(item, dict) and item.get("placeholder"):
                gaps.append(
                    LaunchGap(
                        "menu",
                        str(item.get("name")),
                        f"placeholder button in {path.name}: set its real url, remove placeholder",
                    )
                )
    return gaps


def template_gaps(data_dir: Path) -> list[LaunchGap]:
    path = data_dir / TEMPLATES_FILE
    try:
        book = TemplateBook.load(path) if path.exists() else TemplateBook.empty()
    except TemplateDataError:
        return []  # plain check-data reports the broken file
    return [
        LaunchGap(
            "template",
            name,
            f"template_id is not set in {TEMPLATES_FILE}: WeChat updates after 48 hours "
            "cannot be sent",
        )
        for name in book.unconfigured()
    ]


def _need(env: Mapping[str, str], names: tuple[str, ...], why: str) -> list[LaunchGap]:
    return [LaunchGap("setting", n, why) for n in names if not env.get(n, "").strip()]


def setting_gaps(env: Mapping[str, str]) -> list[LaunchGap]:
    wechat = bool(env.get("TONGXIN_WECHAT_TOKEN", "").strip())
    telegram = bool(env.get("TONGXIN_TELEGRAM_TOKEN", "").strip())
    gaps: list[LaunchGap] = []
    if not wechat and not telegram:
        gaps.append(
            LaunchGap(
                "setting",
                "TONGXIN_WECHAT_TOKEN",
                "no channel is on: set it (or TONGXIN_TELEGRAM_TOKEN) so residents reach the bot",
            )
        )
    if wechat:
        gaps += _need(
            env,
            ("TONGXIN_WECHAT_APPID", "TONGXIN_WECHAT_SECRET"),
            "WeChat is on: needed for late replies, ticket updates and photos",
        )
        gaps += _need(
            env, ("TONGXIN_WECHAT_AES_KEY",), "WeChat is on: safe mode (messages encrypted)"
        )
    if telegram:
        gaps += _need(
            env,
            ("TONGXIN_TELEGRAM_WEBHOOK_SECRET",),
            "Telegram is on: the webhook refuses updates without it",
        )
        if env.get("TONGXIN_STAFF_CHAT_ID", "").strip():
            gaps += _need(
                env, ("TONGXIN_STAFF_USER_IDS",), "staff chat is on: who may press 接单 / 办结"
            )
    gaps += _need(env, ("TONGXIN_SECRET_KEY",), "the staff workspace (/staff/) is off without it")
    if (
        not env.get("TONGXIN_WECOM_WEBHOOK_URL", "").strip()
        and not env.get("TONGXIN_STAFF_CHAT_ID", "").strip()
    ):
        gaps.append(
            LaunchGap(
                "setting",
                "TONGXIN_WECOM_WEBHOOK_URL",
                "no staff group is told of new tickets (or set TONGXIN_STAFF_CHAT_ID)",
            )
        )
    gaps += _need(env, ("TONGXIN_PUBLIC_URL",), "links to tickets in staff notices")
    return gaps


def launch_gaps(data_dir: Path, env: Mapping[str, str]) -> list[LaunchGap]:
    return [
        *fact_gaps(data_dir),
        *menu_gaps(data_dir),
        *template_gaps(data_dir),
        *setting_gaps(env),
    ]


def gaps_by_area(gaps: list[LaunchGap]) -> dict[str, int]:
    counts: dict[str, Any] = {}
    for gap in gaps:
        counts[gap.area] = counts.get(gap.area, 0) + 1
    return counts
