"""What every channel's outbox worker shares: a lease so that one server
process at a time delivers (`tongxin serve --workers N` shares one SQLite
file), a mark on the row being sent (so that a crash mid-send is known), and
the back-off for deliveries that failed for a passing reason.

Everything here blocks on the store: call it from a worker thread.
"""

from __future__ import annotations

from dataclasses import dataclass

from flows.store import Store


class StoreLease:
    """One holder at a time across processes: a key in the store's kv table
    with an owner and a time to live, taken and renewed inside a write
    transaction. A holder renews it before each row it sends, so that a slow
    batch never outlives the lease while another process takes the same rows."""

    def __init__(self, store: Store, key: str, *, ttl_s: float, owner: str) -> None:
        self.store = store
        self.key = key
        self.ttl_s = ttl_s
        self.owner = owner

    def hold(self) -> bool:
        """Take or renew the lease; False while another process holds it."""
        with self.store.transaction():
            holder = self.store.kv_get(self.key)
            if holder not in (None, self.owner):
                return False
            self.store.kv_set(self.key, self.owner, ttl_s=self.ttl_s)
            return True

    def renew(self) -> bool:
        """Extend the lease if this process holds it (a heartbeat: never takes it)."""
        with self.store.transaction():
            if self.store.kv_get(self.key) != self.owner:
                return False
            self.store.kv_set(self.key, self.owner, ttl_s=self.ttl_s)
            return True

    def release(self) -> None:
        with self.store.transaction():
            if self.store.kv_get(self.key) == self.owner:
                self.store.kv_delete(self.key)


# How long an in-flight mark outlives a crash: longer than any back-off.
IN_FLIGHT_TTL_S = 7 * 24 * 3600.0


class InFlight:
    """Rows being sent, marked in the store's kv table for the length of one send.

    Sending a row and marking it sent are two steps; a process killed between
    them (or a send whose answer never came back) leaves the mark behind. The
    row is then sent again, since it may never have arrived, and `begin` tells
    the sender so, so that the user reads that it may be a repeat: delivery
    stays at-least-once, and the one repeat a crash can cause is harmless."""

    def __init__(self, store: Store, channel: str) -> None:
        self.store = store
        self.channel = channel

    def _key(self, item_id: int) -> str:
        return f"outbox:in_flight:{self.channel}:{item_id}"

    def begin(self, item_id: int) -> bool:
        """Mark the row as being sent; True when an earlier send of it may have
        reached the user (its mark was still there)."""
        key = self._key(item_id)
        with self.store.transaction():
            earlier = self.store.kv_get(key) is not None
            self.store.kv_set(key, "1", ttl_s=IN_FLIGHT_TTL_S)
        return earlier

    def end(self, item_id: int) -> None:
        """Nothing sent so far may have reached the user unless the row is now
        marked sent: call after a success, a final refusal, or a refusal of a
        first attempt (a refused retry says nothing about the attempt before)."""
        self.store.kv_delete(self._key(item_id))


def mark_repeat(text: str, notice: str) -> str:
    """`text` as sent again after an interrupted send: the notice first."""
    return f"{notice}\n{text}"


@dataclass(frozen=True)
class Backoff:
    """Exponential back-off for an outbox row: `first_s`, doubling up to
    `max_s`, and given up (the row fails for staff to see) after `max_attempts`."""

    first_s: float = 5.0
    max_s: float = 600.0
    max_attempts: int = 12

    def delay(self, attempts_so_far: int) -> float:
        return min(self.max_s, self.first_s * 2 ** max(0, attempts_so_far))

    def retry_in(self, attempts_so_far: int) -> float | None:
        """Seconds until the next try after a failed one, or None to give up."""
        if attempts_so_far + 1 >= self.max_attempts:
            return None
        return self.delay(attempts_so_far)
