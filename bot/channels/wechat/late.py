"""Late WeChat turns survive a crash.

A message whose turn outlives the reply budget is answered `success`, and WeChat
will not send it again. Before that answer the message is recorded in the
store (key/value rows `wechat:late:<MsgId>`, the text with ID numbers masked),
and the record goes in the transaction that queues the turn's replies. Each
process keeps a heartbeat row; a record whose owner's heartbeat has lapsed (the
process died) is claimed by another process (or the restarted one), whose turn
— de-duplicated by MsgId, so a turn that had committed is not run twice —
sends the replies through the customer-service API.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from typing import Any

from flows.messages import IncomingMessage
from flows.store import Store
from nlu.entities import mask_id_numbers

log = logging.getLogger("tongxin.wechat.late")

LATE_PREFIX = "wechat:late:"
ALIVE_PREFIX = "wechat:alive:"
# A process renews its heartbeat every poll (2 s by default); three missed
# beats and its late turns are taken over.
ALIVE_TTL_S = 6.0
RECORD_TTL_S = 24 * 3600.0


def message_to_json(msg: IncomingMessage) -> str:
    data = dataclasses.asdict(msg)
    data["text"] = mask_id_numbers(msg.text or "")
    return json.dumps(data, ensure_ascii=False)


def message_from_json(raw: str) -> IncomingMessage:
    data: dict[str, Any] = json.loads(raw)
    if data.get("location") is not None:
        data["location"] = tuple(data["location"])
    known = {f.name for f in dataclasses.fields(IncomingMessage)}
    return IncomingMessage(**{k: v for k, v in data.items() if k in known})


def message_scope(key: str) -> str:
    """The transaction scope of one WeChat message's delivery markers: its
    attempts (WeChat's retries, on any host) take turns on them."""
    return f"wechat:msg:{key}"


class LateLedger:
    """The records of late turns, and this process's heartbeat. Blocking:
    call from a worker thread."""

    def __init__(self, store: Store, owner: str) -> None:
        self.store = store
        self.owner = owner

    def record(self, msg: IncomingMessage, *, unless: str) -> None:
        """Keep `msg` until its replies are queued, unless key `unless` (the
        queued marker) shows they already are."""
        with self.store.transaction(scope=message_scope(msg.message_id or "")):
            if self.store.kv_get(unless) is not None:
                return
            entry = {"owner": self.owner, "user_id": msg.user_id, "message": message_to_json(msg)}
            self.store.kv_set(
                LATE_PREFIX + (msg.message_id or ""), json.dumps(entry), ttl_s=RECORD_TTL_S
            )

    def done(self, message_id: str) -> None:
        """The replies are queued; call inside the transaction that queues them."""
        self.store.kv_delete(LATE_PREFIX + message_id)

    def heartbeat(self) -> None:
        self.store.kv_set(ALIVE_PREFIX + self.owner, "1", ttl_s=ALIVE_TTL_S)

    def stop(self) -> None:
        self.store.kv_delete(ALIVE_PREFIX + self.owner)

    def claim_orphans(self) -> list[IncomingMessage]:
        """Late turns of processes whose heartbeat lapsed, now owned by this one."""
        claimed = []
        with self.store.transaction():
            for key, raw in self.store.kv_items(LATE_PREFIX):
                entry = json.loads(raw)
                owner = entry.get("owner")
                if owner == self.owner or self.store.kv_get(ALIVE_PREFIX + owner) is not None:
                    continue
                entry["owner"] = self.owner
                self.store.kv_set(key, json.dumps(entry), ttl_s=RECORD_TTL_S)
                claimed.append(message_from_json(entry["message"]))
        if claimed:
            log.warning("finishing %d late WeChat turn(s) of a stopped process", len(claimed))
        return claimed
