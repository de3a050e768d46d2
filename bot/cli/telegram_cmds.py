"""`tongxin telegram ...`: register the webhook and the command menu with Telegram."""

from __future__ import annotations

import argparse
import re
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

from bot.cli.common import CliError, add_command, add_group, bot_settings

if TYPE_CHECKING:
    from telegram import Bot

    from bot.settings import Settings

T = TypeVar("T")
# Telegram's rule for secret_token: 1-256 of A-Z a-z 0-9 _ -.
_SECRET = re.compile(r"^[A-Za-z0-9_-]{1,256}$")


def register(sub: Any) -> None:
    tsub = add_group(
        sub,
        "telegram",
        "Telegram bot: webhook and command menu",
        "Telegram bot tasks (settings from TONGXIN_TELEGRAM_* env).",
        "tongxin telegram set-webhook https://bot.example.org/telegram",
    )

    p = add_command(
        tsub,
        "set-webhook",
        "tell Telegram to POST updates to URL with the X-Telegram-Bot-Api-Secret-Token header "
        "(TONGXIN_TELEGRAM_WEBHOOK_SECRET)",
        "TONGXIN_TELEGRAM_TOKEN=123:abc TONGXIN_TELEGRAM_WEBHOOK_SECRET=s3cret "
        "tongxin telegram set-webhook https://bot.example.org/telegram",
    )
    p.add_argument("url", help="public https URL of POST /telegram")
    p.add_argument(
        "--drop-pending-updates", action="store_true", help="discard updates queued at Telegram"
    )
    p.add_argument(
        "--max-connections",
        type=int,
        default=40,
        help="parallel webhook connections Telegram may open (1-100, default 40)",
    )
    p.set_defaults(handler=cmd_set_webhook)

    p = add_command(
        tsub,
        "delete-webhook",
        "stop webhook delivery (needed before polling with getUpdates)",
        "tongxin telegram delete-webhook",
    )
    p.add_argument(
        "--drop-pending-updates", action="store_true", help="discard updates queued at Telegram"
    )
    p.set_defaults(handler=cmd_delete_webhook)

    p = add_command(
        tsub,
        "commands",
        "register /start /help /faq /status /cancel with setMyCommands "
        "(`tongxin serve` also does this at start)",
        "tongxin telegram commands",
    )
    p.set_defaults(handler=cmd_commands)


def _settings(args: argparse.Namespace) -> Settings:
    settings = bot_settings(args)
    if not settings.telegram_token:
        raise CliError("set TONGXIN_TELEGRAM_TOKEN (the bot token from @BotFather)")
    return settings


def _call(settings: Settings, action: Callable[[Bot], Awaitable[T]]) -> T:
    """Run one Bot API call; Telegram's refusals become CLI errors."""
    import asyncio

    from telegram.error import InvalidToken, NetworkError, TelegramError

    from bot.channels.telegram.channel import make_bot

    async def run() -> T:
        async with make_bot(settings) as bot:
            return await action(bot)

    try:
        return asyncio.run(run())
    except InvalidToken as exc:
        # PTB's message quotes the token; never print it.
        raise CliError("Telegram rejected the bot token (TONGXIN_TELEGRAM_TOKEN)") from exc
    except NetworkError as exc:
        raise CliError(f"Telegram refused or could not be reached: {exc.message}") from exc
    except TelegramError as exc:
        raise CliError(f"Telegram refused: {exc.message}") from exc


def cmd_set_webhook(args: argparse.Namespace) -> int:
    from bot.channels.telegram.channel import ALLOWED_UPDATES

    parts = urlsplit(args.url)
    if parts.scheme != "https" or not parts.netloc:
        raise CliError(
            f"the webhook URL must be https://... (Telegram requires it), got {args.url}"
        )
    if not 1 <= args.max_connections <= 100:
        raise CliError("--max-connections must be between 1 and 100")
    settings = _settings(args)
    secret = settings.telegram_webhook_secret
    if not secret:
        raise CliError(
            "set TONGXIN_TELEGRAM_WEBHOOK_SECRET: POST /telegram refuses requests without it"
        )
    if not _SECRET.match(secret):
        raise CliError(
            "TONGXIN_TELEGRAM_WEBHOOK_SECRET may only hold A-Z a-z 0-9 _ - (1-256 characters)"
        )

    async def action(bot: Bot) -> bool:
        return await bot.set_webhook(
            args.url,
            secret_token=secret,
            allowed_updates=list(ALLOWED_UPDATES),
            max_connections=args.max_connections,
            drop_pending_updates=args.drop_pending_updates,
        )

    _call(settings, action)
    print(f"webhook set: {args.url} (updates: {', '.join(ALLOWED_UPDATES)}; secret header on)")
    return 0


def cmd_delete_webhook(args: argparse.Namespace) -> int:
    settings = _settings(args)

    async def action(bot: Bot) -> bool:
        return await bot.delete_webhook(drop_pending_updates=args.drop_pending_updates)

    _call(settings, action)
    print("webhook deleted")
    return 0


def cmd_commands(args: argparse.Namespace) -> int:
    from bot.channels.telegram.channel import bot_commands
    from flows.replies import Replies, RepliesError

    settings = _settings(args)
    try:
        commands = bot_commands(Replies.load(settings.data_dir / "replies"))
    except RepliesError as exc:
        raise CliError(str(exc)) from exc

    async def action(bot: Bot) -> bool:
        return await bot.set_my_commands(commands)

    _call(settings, action)
    for command in commands:
        print(f"/{command.command}  {command.description}")
    return 0
