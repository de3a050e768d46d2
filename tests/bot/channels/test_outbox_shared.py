"""The pieces both outbox workers share: the cross-process lease and the back-off."""

from __future__ import annotations

import time
from pathlib import Path

from bot.channels.outbox import Backoff, StoreLease
from flows.store import Store


def test_lease_has_one_holder_across_connections_and_expires(tmp_path: Path) -> None:
    db = tmp_path / "tongxin.db"
    first, second = Store(db), Store(db)  # two server processes on one file
    try:
        a = StoreLease(first, "test:lease", ttl_s=0.3, owner="a")
        b = StoreLease(second, "test:lease", ttl_s=0.3, owner="b")
        assert a.hold() and a.hold()  # renewing is holding
        assert not b.hold()
        b.release()  # not b's to release
        assert not b.hold()
        a.release()
        assert b.hold() and not a.hold()
        time.sleep(0.4)  # b died without releasing: the lease runs out
        assert a.hold() and not b.hold()
    finally:
        first.close()
        second.close()


def test_backoff_doubles_up_to_the_cap_and_then_gives_up() -> None:
    backoff = Backoff(first_s=15, max_s=60, max_attempts=4)
    assert [backoff.retry_in(n) for n in range(5)] == [15, 30, 60, None, None]


def test_a_heartbeat_keeps_a_short_lease_and_a_crash_hands_it_over(tmp_path: Path) -> None:
    db = tmp_path / "tongxin.db"
    first, second = Store(db), Store(db)
    try:
        a = StoreLease(first, "test:lease", ttl_s=0.3, owner="a")
        b = StoreLease(second, "test:lease", ttl_s=0.3, owner="b")
        assert a.hold() and not b.renew()  # a heartbeat never takes a lease
        for _ in range(6):  # a send waiting 0.6 s: the heartbeat keeps the lease
            time.sleep(0.1)
            assert a.renew()
        assert not b.hold()
        time.sleep(0.35)  # a was killed: no more heartbeats
        assert b.hold() and not a.renew()
    finally:
        first.close()
        second.close()
