"""`tongxin wechat menu`: push the official account's menu (data/wechat_menu.yml)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from bot.cli.common import CliError, add_command, add_group, bot_settings


def register(sub: Any) -> None:
    wsub = add_group(
        sub,
        "wechat",
        "WeChat official account: push the menu",
        "WeChat official-account tasks (settings from TONGXIN_WECHAT_* env).",
        "tongxin wechat menu --dry-run",
    )
    p = add_command(
        wsub,
        "menu",
        "check the menu file and push it through WeChat's menu/create API",
        "TONGXIN_WECHAT_APPID=wx... TONGXIN_WECHAT_SECRET=... tongxin wechat menu",
    )
    p.add_argument(
        "--file", metavar="F", default=None, help="menu YAML (default: data/wechat_menu.yml)"
    )
    p.add_argument("--dry-run", action="store_true", help="check and print the JSON; push nothing")
    p.set_defaults(handler=cmd_menu)


def cmd_menu(args: argparse.Namespace) -> int:
    from bot.channels.wechat.menu import MenuError, load_menu
    from bot.channels.wechat_api import WeChatApi, WeChatApiError, WeChatNetworkError
    from flows.definitions import FlowBook, FlowDataError
    from flows.store import Store

    settings = bot_settings(args)
    data_dir = settings.data_dir
    path = Path(args.file) if args.file else data_dir / "wechat_menu.yml"
    try:
        book = FlowBook.load(data_dir / "flows.yml", data_dir / "routing.yml")
        menu = load_menu(path, set(book.menu_actions))
    except (MenuError, FlowDataError) as exc:
        raise CliError(str(exc)) from exc
    for name in menu.skipped:
        print(f"skipped placeholder button {name!r} (fill in its url first)", file=sys.stderr)
    if args.dry_run:
        print(json.dumps(menu.data, ensure_ascii=False, indent=2))
        return 0
    if not settings.wechat_appid or not settings.wechat_secret:
        raise CliError("set TONGXIN_WECHAT_APPID and TONGXIN_WECHAT_SECRET to push the menu")
    store = Store(settings.db_path)  # the shared access-token cache
    try:
        api = WeChatApi(
            store,
            appid=settings.wechat_appid,
            secret=settings.wechat_secret,
            base_url=settings.wechat_api_url,
        )
        api.create_menu(menu.data)
    except WeChatApiError as exc:
        raise CliError(f"WeChat refused the menu: {exc}") from exc
    except WeChatNetworkError as exc:
        raise CliError(f"cannot reach WeChat: {exc}") from exc
    finally:
        store.close()
    count = sum(len(b.get("sub_button", [b])) for b in menu.data["button"])
    print(f"menu pushed: {len(menu.data['button'])} top-level buttons, {count} entries")
    return 0
