"""The custom menu as data: read `data/wechat_menu.yml`, check it against
WeChat's limits and the dialogue's menu keys, and build the JSON that
`/cgi-bin/menu/create` takes."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

MAX_TOP = 3
MAX_SUB = 5
MAX_TOP_NAME_BYTES = 16
MAX_SUB_NAME_BYTES = 60
MAX_KEY_BYTES = 128
MAX_URL_BYTES = 1024


class MenuError(Exception):
    """The menu file cannot be pushed as it is."""


@dataclass
class Menu:
    data: dict[str, Any]  # WeChat's JSON
    skipped: list[str] = field(default_factory=list)  # placeholder buttons left out


def load_menu(path: Path, menu_keys: Collection[str]) -> Menu:
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise MenuError(f"{path}: cannot read the menu: {exc}") from exc
    if not isinstance(raw, dict) or not isinstance(raw.get("button"), list):
        raise MenuError(f"{path}: expected a mapping with a `button` list")
    problems: list[str] = []
    skipped: list[str] = []
    top: list[dict[str, Any]] = []
    for i, item in enumerate(raw["button"], 1):
        where = f"{path}: button {i}"
        if not isinstance(item, dict):
            problems.append(f"{where}: expected a mapping")
            continue
        if "sub_button" in item:
            name = _name(item, MAX_TOP_NAME_BYTES, where, problems)
            subs = item["sub_button"]
            if not isinstance(subs, list) or not subs:
                problems.append(f"{where}: sub_button must be a non-empty list")
                continue
            if len(subs) > MAX_SUB:
                problems.append(f"{where}: at most {MAX_SUB} sub-buttons")
            built = []
            for j, sub in enumerate(subs, 1):
                button = _button(sub, MAX_SUB_NAME_BYTES, f"{where}.{j}", menu_keys, problems)
                if button is None:
                    continue
                if sub.get("placeholder"):
                    skipped.append(str(sub.get("name")))
                    continue
                built.append(button)
            if built:
                top.append({"name": name, "sub_button": built})
        else:
            button = _button(item, MAX_TOP_NAME_BYTES, where, menu_keys, problems)
            if button is None:
                continue
            if item.get("placeholder"):
                skipped.append(str(item.get("name")))
                continue
            top.append(button)
    if len(raw["button"]) > MAX_TOP:
        problems.append(f"{path}: at most {MAX_TOP} top-level buttons")
    if not top and not problems:
        problems.append(f"{path}: no button left to push")
    if problems:
        raise MenuError("; ".join(problems))
    return Menu(data={"button": top}, skipped=skipped)


def _name(item: dict[str, Any], max_bytes: int, where: str, problems: list[str]) -> str:
    name = item.get("name")
    if not isinstance(name, str) or not name.strip():
        problems.append(f"{where}: a name is required")
        return ""
    if len(name.encode("utf-8")) > max_bytes:
        problems.append(f"{where}: name {name!r} is longer than {max_bytes} bytes")
    return name


def _button(
    item: Any, max_name: int, where: str, menu_keys: Collection[str], problems: list[str]
) -> dict[str, Any] | None:
    if not isinstance(item, dict):
        problems.append(f"{where}: expected a mapping")
        return None
    name = _name(item, max_name, where, problems)
    kind = item.get("type")
    if kind == "click":
        key = item.get("key")
        if not isinstance(key, str) or key not in menu_keys:
            known = ", ".join(sorted(menu_keys))
            problems.append(f"{where}: key {key!r} is not a menu action (one of: {known})")
            return None
        if len(key.encode("utf-8")) > MAX_KEY_BYTES:
            problems.append(f"{where}: key longer than {MAX_KEY_BYTES} bytes")
        return {"type": "click", "name": name, "key": key}
    if kind == "view":
        url = item.get("url")
        if not isinstance(url, str) or not url.startswith(("https://", "http://")):
            problems.append(f"{where}: a view button needs an http(s) url")
            return None
        if len(url.encode("utf-8")) > MAX_URL_BYTES:
            problems.append(f"{where}: url longer than {MAX_URL_BYTES} bytes")
        return {"type": "view", "name": name, "url": url}
    problems.append(f"{where}: type must be click or view, got {kind!r}")
    return None
