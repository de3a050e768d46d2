"""`tongxin serve`: the ASGI app with every configured channel."""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any

from bot.cli.common import CliError, add_command, bot_settings, build_core_or_exit


def register(sub: Any) -> None:
    parser = add_command(
        sub,
        "serve",
        "Serve GET/POST /wechat, POST /telegram and GET /healthz (settings from TONGXIN_* env).",
        "TONGXIN_WECHAT_TOKEN=abc tongxin serve --host 127.0.0.1 --port 8080",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8080, help="port (default 8080)")
    parser.add_argument(
        "--telegram-polling",
        action="store_true",
        help="development: fetch Telegram updates with getUpdates instead of a webhook",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="worker processes sharing the SQLite file (default 1; one core each)",
    )
    parser.add_argument("--log-level", default="info", help="uvicorn log level (default info)")
    parser.set_defaults(handler=run_serve)


def build_channels(core: Any, *, telegram_polling: bool) -> list[Any]:
    """Every channel whose settings are present, and the WeCom staff notices."""
    channels: list[Any] = []
    settings = core.settings
    if settings.wechat_token:
        from bot.channels.wechat import WeChatChannel

        channels.append(WeChatChannel(core))
    if settings.telegram_token:
        from bot.channels.telegram import TelegramChannel

        channels.append(TelegramChannel(core, polling=telegram_polling))
    if settings.wecom_webhook_url:
        from bot.staff_notify.service import StaffNoticeService
        from bot.staff_notify.wecom import WeComNotifier

        notifier = WeComNotifier(
            settings.wecom_webhook_url, core.replies, public_url=settings.public_url
        )
        channels.append(StaffNoticeService(core.store, notifier))
    return channels


def _announce_workspace(settings: Any, host: str, port: int) -> None:
    """Say where the staff workspace is, or what it needs to start."""
    from bot.workspace import secret_problem

    problem = secret_problem(settings.secret_key)
    if problem is None:
        shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
        print(f"staff workspace: http://{shown}:{port}/staff/", file=sys.stderr, flush=True)
    else:
        print(
            f"staff workspace is off: {problem}; /staff/ answers 503 until it is set",
            file=sys.stderr,
            flush=True,
        )


def run_serve(args: argparse.Namespace) -> int:
    import os

    import uvicorn

    from bot.http_guard import (
        GuardedHttpProtocol,
        HttpLimits,
        LimitsError,
        install_log_filters,
        raise_open_file_limit,
    )
    from bot.web import create_app

    logging.basicConfig(level=logging.INFO)
    install_log_filters()
    settings = bot_settings(args)
    try:
        HttpLimits.from_env()
    except LimitsError as exc:
        raise CliError(str(exc)) from exc
    # Every connection is an open file: take all the system allows.
    raise_open_file_limit()
    # Slow clients: header/body read timeouts and a connection cap (bot.http_guard);
    # idle kept-alive connections go after 5 s.
    server_options: dict[str, Any] = {
        "http": GuardedHttpProtocol,
        "timeout_keep_alive": 5,
        "log_level": args.log_level,
    }
    if args.telegram_polling and not settings.telegram_token:
        raise CliError("--telegram-polling needs TONGXIN_TELEGRAM_TOKEN")
    if args.workers < 1:
        raise CliError("--workers must be at least 1")
    if args.workers > 1:
        if args.telegram_polling:
            raise CliError("--telegram-polling runs in one process; drop --workers")
        _announce_workspace(settings, args.host, args.port)
        # Each worker builds its own core from the environment.
        os.environ["TONGXIN_DB"] = str(settings.db_path)
        uvicorn.run(
            "bot.web:app_from_env",
            factory=True,
            host=args.host,
            port=args.port,
            workers=args.workers,
            **server_options,
        )
        return 0
    core = build_core_or_exit(settings, inline_outbox=frozenset())
    # After the store opened: a database that cannot be used is the one error line.
    _announce_workspace(settings, args.host, args.port)
    try:
        channels = build_channels(core, telegram_polling=args.telegram_polling)
    except ValueError as exc:
        core.close()
        raise CliError(str(exc)) from exc
    app = create_app(core, channels)
    try:
        uvicorn.run(app, host=args.host, port=args.port, **server_options)
    finally:
        core.close()
    return 0
