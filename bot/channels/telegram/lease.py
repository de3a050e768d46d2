"""A lease in the store: one holder at a time across server processes."""

from __future__ import annotations

from flows.store import Store


class StoreLease:
    """One holder at a time across processes (`tongxin serve --workers N`
    shares one SQLite file): a key in the store's kv table with an owner and a
    time to live, taken and renewed inside a write transaction. Blocking:
    call it from a worker thread."""

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

    def release(self) -> None:
        with self.store.transaction():
            if self.store.kv_get(self.key) == self.owner:
                self.store.kv_delete(self.key)
