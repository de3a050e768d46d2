"""`tongxin serve`'s background sweep for overdue tickets: every minute (or
TONGXIN_OVERDUE_SWEEP_S) each server process records the `overdue` event of
tickets that passed their due time. Several processes on one database may
sweep at once; the store's conditional claim lets only one write each event."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator

import anyio.to_thread

from bot.app import Core
from flows.deadlines import sweep_overdue

log = logging.getLogger("tongxin.overdue")
DEFAULT_SWEEP_S = 60.0


def sweep_interval() -> float:
    raw = os.environ.get("TONGXIN_OVERDUE_SWEEP_S", "").strip()
    try:
        value = float(raw) if raw else DEFAULT_SWEEP_S
    except ValueError:
        value = DEFAULT_SWEEP_S
    return value if value > 0 else DEFAULT_SWEEP_S


async def _loop(core: Core, every_s: float) -> None:
    if core.deadlines is None:
        return
    deadlines = core.deadlines
    while True:
        try:
            marked = await anyio.to_thread.run_sync(sweep_overdue, core.store, deadlines)
            if marked:
                log.info("overdue tickets: %s", ", ".join(marked))
        except Exception:
            log.exception("overdue sweep failed; trying again in %.0f s", every_s)
        await asyncio.sleep(every_s)


@contextlib.asynccontextmanager
async def running_sweeper(core: Core) -> AsyncIterator[None]:
    task = asyncio.create_task(_loop(core, sweep_interval()))
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
