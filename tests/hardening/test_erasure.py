"""Erasure leaves no trace: after the in-chat 删除我的信息 / 确认删除 (a store
that stays open, as in a multi-worker server) the phone is in no byte of the
database file or its WAL; `privacy forget` also removes the deep-link records
that carried the user's group text; expired key/value rows are purged."""

from __future__ import annotations

import time

from bot.app import Core
from bot.cli.main import main
from flows.messages import IncomingMessage

PHONE = "13987654321"


def _stored_bytes(core: Core) -> bytes:
    path = core.store.path
    data = path.read_bytes()
    wal = path.with_name(path.name + "-wal")
    return data + (wal.read_bytes() if wal.exists() else b"")


def _say(core: Core, text: str, **kwargs: object) -> str:
    msg = IncomingMessage(channel="test", user_id="u-erase", text=text, **kwargs)  # type: ignore[arg-type]
    return "\n".join(r.text for r in core.dispatcher.handle(msg))


def test_in_chat_erasure_leaves_the_phone_in_no_byte_of_file_or_wal(core: Core) -> None:
    _say(core, f"我叫王芳，电话{PHONE}，住幸福小区3号楼，楼上邻居天天半夜吵，想申请调解")
    _say(core, "确认")
    assert PHONE.encode() in _stored_bytes(core)
    _say(core, "删除我的信息")
    _say(core, "确认删除")
    assert PHONE.encode() not in _stored_bytes(core)  # the store is still open


def test_privacy_forget_removes_deep_link_records_with_group_text(core: Core) -> None:
    _say(core, f"我想申请调解，我电话{PHONE}", in_group=True, chat_id="-100777")
    [(_, record)] = core.store.kv_items("deeplink:")
    assert PHONE in record
    db = core.store.path
    assert main(["privacy", "forget", "--user", "u-erase", "--yes", "--db", str(db)]) == 0
    assert core.store.kv_items("deeplink:") == []
    assert PHONE.encode() not in _stored_bytes(core)


def test_expired_key_value_rows_are_purged(core: Core) -> None:
    store = core.store
    store.kv_set("wechat:queued:1", "1", ttl_s=0.01)
    store.kv_set("lease", "me", ttl_s=600)
    time.sleep(0.05)
    assert store.purge_expired_kv() == 1
    rows = store._rows("SELECT key FROM kv WHERE key IN ('wechat:queued:1', 'lease')")
    assert [r["key"] for r in rows] == ["lease"]
