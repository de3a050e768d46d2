"""Telegram: resident groups and private chats, deep links to private chats for
personal details, a staff group whose buttons move tickets."""

from bot.channels.telegram.channel import TelegramChannel, TelegramConfigError
from bot.channels.telegram.limits import TelegramLimits

__all__ = ["TelegramChannel", "TelegramConfigError", "TelegramLimits"]
