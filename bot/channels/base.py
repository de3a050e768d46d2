"""What every web-served channel offers the ASGI app."""

from __future__ import annotations

from typing import Protocol

from starlette.routing import BaseRoute


class ChannelService(Protocol):
    name: str

    def routes(self) -> list[BaseRoute]:
        """HTTP routes this channel serves (webhooks)."""
        ...

    async def start(self) -> None:
        """Start background work (outbox delivery, polling); return quickly."""
        ...

    async def stop(self) -> None:
        """Stop background work; pending rows stay in the outbox for next time."""
        ...
