"""Live takeover: a staff member answers a resident in person, and the bot
keeps quiet for that resident until the conversation is handed back or has
been idle for the takeover's time.

The state lives in the store's key/value table with a time to live, so that
every server process sees it and an idle takeover ends by itself. The
dispatcher asks `touch` once per turn; the staff workspace takes and releases.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from flows.store import Store, StoreError, iso, user_scope, utcnow

_PREFIX = "takeover:"
# Kept without a time to live beside the takeover, so that the first turn
# after an idle takeover lapsed can tell the resident the bot is back.
_MARK = "takeover-mark:"


class TakeoverHeldError(StoreError):
    """Another staff member already holds this conversation."""


@dataclass(frozen=True)
class Takeover:
    staff: str
    ticket_id: str | None
    idle_s: float


def _key(channel: str, user_id: str) -> str:
    return f"{_PREFIX}{channel}:{user_id}"


def current(store: Store, channel: str, user_id: str) -> Takeover | None:
    raw = store.kv_get(_key(channel, user_id))
    return None if raw is None else _load(raw)


def _dump(held: Takeover) -> str:
    return json.dumps({"staff": held.staff, "ticket_id": held.ticket_id, "idle_s": held.idle_s})


def _load(raw: str) -> Takeover:
    data = json.loads(raw)
    return Takeover(str(data["staff"]), data.get("ticket_id"), float(data["idle_s"]))


def _save(store: Store, channel: str, user_id: str, held: Takeover) -> None:
    store.kv_set(_key(channel, user_id), _dump(held), ttl_s=held.idle_s)


def take(
    store: Store,
    channel: str,
    user_id: str,
    staff: str,
    *,
    idle_s: float,
    ticket_id: str | None = None,
) -> Takeover:
    """Hold the conversation for `staff` (again: renews it). Raises
    `TakeoverHeldError` while someone else holds it."""
    with store.transaction(scope=user_scope(channel, user_id)):
        held = current(store, channel, user_id)
        if held is not None and held.staff != staff:
            raise TakeoverHeldError(f"the conversation is held by {held.staff}")
        new = Takeover(staff, ticket_id, idle_s)
        _save(store, channel, user_id, new)
        store.kv_set(_MARK + f"{channel}:{user_id}", _dump(new))
        return new


def touch(store: Store, channel: str, user_id: str) -> Takeover | None:
    """The holder of the conversation, its idle time restarted; None when the
    bot answers. Call inside the turn's transaction."""
    held = current(store, channel, user_id)
    if held is not None:
        _save(store, channel, user_id, held)
    return held


def release(store: Store, channel: str, user_id: str) -> Takeover | None:
    """Give the conversation back to the bot; returns what was held."""
    with store.transaction(scope=user_scope(channel, user_id)):
        held = current(store, channel, user_id)
        store.kv_delete(_key(channel, user_id))
        store.kv_delete(_MARK + f"{channel}:{user_id}")
        return held


def lapsed(store: Store, channel: str, user_id: str) -> Takeover | None:
    """The takeover that ended by itself (idle) since the resident last
    wrote, reported once, with a "handback" event on its ticket; None
    otherwise. Call inside the turn's transaction, after `touch` said None."""
    mark = _MARK + f"{channel}:{user_id}"
    raw = store.kv_get(mark)
    if raw is None or current(store, channel, user_id) is not None:
        return None
    store.kv_delete(mark)
    held = _load(raw)
    if held.ticket_id:
        # The audit trail says who held it and that it lapsed, not a person's act.
        store._add_event(
            held.ticket_id,
            "system",
            "handback",
            None,
            None,
            f"{held.staff} 空闲超时",
            iso(utcnow()),
        )
    return held
