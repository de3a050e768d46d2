"""Storage faults under the WeChat channel: /healthz tells the truth (a store
that takes no writes, a deleted database file), a full database gets a polite
answer instead of HTTP 500, and the message is handled once the store works."""

from __future__ import annotations

import pytest

from .test_wechat_http import wait_for

pytestmark = pytest.mark.anyio

USER = "oFaultUser0000000000000000001"


async def test_healthz_is_ok_only_while_the_store_takes_writes(kit_factory) -> None:
    async with kit_factory(mode="plain") as kit:
        client = kit.wechat.client
        ok = await client.get("/healthz")
        assert ok.status_code == 200 and ok.json()["db"] == "ok"
        assert ok.json()["channel_state"]["wechat"]["ok"] is True

        store = kit.core.store
        pages = store._conn.execute("PRAGMA page_count").fetchone()[0]
        store._conn.execute(f"PRAGMA max_page_count={pages}")  # the disk is full
        # Fill what is left of the last pages, as a full disk would.
        for size in (2000, 500, 100, 10):
            for i in range(400):
                try:
                    store.kv_set(f"filler:{size}:{i}", "x" * size)
                except Exception:
                    break
        full = await client.get("/healthz")
        assert full.status_code == 503 and full.json()["status"] == "error"
        assert "full" in full.json()["db"]

        store._conn.execute("PRAGMA max_page_count=1073741823")  # space again
        assert (await client.get("/healthz")).status_code == 200


async def test_a_read_only_database_gets_a_polite_answer_and_the_message_is_kept(
    kit_factory,
) -> None:
    async with kit_factory(mode="plain") as kit:
        client = kit.wechat.client
        store = kit.core.store
        # As a file turned read-only (or a read-only remount) behaves for SQLite.
        store._conn.execute("PRAGMA query_only=ON")
        health = await client.get("/healthz")
        assert health.status_code == 503 and "readonly" in health.json()["db"]

        answer = await kit.wechat.say(USER, "红色信贷利率多少")
        assert answer.status == 200
        assert answer.text and "出了点问题" in answer.text  # polite, not a 500
        state = (await client.get("/healthz")).json()["channel_state"]["wechat"]
        assert state["waiting_for_store"] == 1
        assert kit.api.texts_to(USER) == []

        store._conn.execute("PRAGMA query_only=OFF")  # writable again
        [late] = await wait_for(lambda: kit.api.texts_to(USER))
        assert "利率" in late  # the kept message, answered through the API
        assert (await client.get("/healthz")).status_code == 200


async def test_a_deleted_database_file_is_reported_not_written_to(kit_factory) -> None:
    async with kit_factory(mode="plain") as kit:
        path = kit.core.store.path
        await kit.wechat.say(USER, "你好")
        path.unlink()
        health = await kit.wechat.client.get("/healthz")
        assert health.status_code == 503 and "deleted or replaced" in health.json()["db"]
        await kit.wechat.say(USER, "我要反映问题，楼道里的灯坏了")
        await kit.wechat.say(USER, "幸福路7号楼")
        await kit.wechat.say(USER, "不留")
        done = await kit.wechat.say(USER, "确认")
        assert done.text and "已提交" not in done.text and "出了点问题" in done.text
