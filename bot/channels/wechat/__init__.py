"""The WeChat official-account channel: signed (and in safe mode encrypted)
callbacks in, passive replies out, late replies and notifications through the
customer-service API."""

from bot.channels.wechat.channel import WeChatChannel, WeChatConfig

__all__ = ["WeChatChannel", "WeChatConfig"]
