"""What every channel's outbox worker shares: a lease so that one server
process at a time delivers (`tongxin serve --workers N` shares one SQLite
file), and the back-off for deliveries that failed for a passing reason.

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
