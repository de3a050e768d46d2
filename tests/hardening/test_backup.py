"""`tongxin db backup` while another process writes, and `tongxin db check`
as the restore check: a real SQLite file, a real restore."""

from __future__ import annotations

import shutil
import sqlite3
import stat
import threading
from pathlib import Path
from typing import Any

from bot.cli.main import main
from flows.store import Store


def file_ticket(store: Store, n: int) -> str:
    ticket, _ = store.create_ticket(
        kind="report_issue",
        department="网格服务站",
        channel="wechat",
        user_id=f"o{n}",
        phone=None,
        fields={"description": f"第{n}个问题"},
        actor="staff",
    )
    return ticket.id


def test_backup_while_writing_restores_to_a_working_database(tmp_path: Path, capsys: Any) -> None:
    db = tmp_path / "live.db"
    store = Store(db)
    for n in range(200):
        file_ticket(store, n)
    stop = threading.Event()

    def keep_writing() -> None:  # `tongxin serve` in another process, filing tickets
        writer = Store(db)
        n = 1000
        while not stop.is_set():
            file_ticket(writer, n)
            n += 1
        writer.close()

    thread = threading.Thread(target=keep_writing)
    thread.start()
    backup = tmp_path / "backups" / "tongxin-2026-12-02.db"
    try:
        assert main(["db", "backup", str(backup), "--verify", "--db", str(db)]) == 0
    finally:
        stop.set()
        thread.join()
    out = capsys.readouterr().out
    assert f"backed up {db} to {backup}" in out
    assert f"{backup}: ok: integrity ok, schema version" in out
    assert stat.S_IMODE(backup.stat().st_mode) == 0o600
    assert not backup.with_name(backup.name + "-wal").exists()  # one self-contained file
    # Restore: the service stopped, the backup put where the database was.
    restored = tmp_path / "restored.db"
    shutil.copyfile(backup, restored)
    again = Store(restored)
    try:
        tickets = again.list_tickets()
        assert len(tickets) >= 200
        assert {t.id for t in tickets} <= {t.id for t in store.list_tickets()}
        file_ticket(again, 99999)  # and it takes new tickets
    finally:
        again.close()
        store.close()


def test_backup_never_overwrites_a_file(tmp_path: Path, capsys: Any) -> None:
    db = tmp_path / "live.db"
    Store(db).close()
    target = tmp_path / "old-backup.db"
    target.write_bytes(b"an older backup")
    assert main(["db", "backup", str(target), "--db", str(db)]) == 2
    assert "exists" in capsys.readouterr().err
    assert target.read_bytes() == b"an older backup"


def test_check_refuses_a_damaged_or_foreign_file(tmp_path: Path, capsys: Any) -> None:
    db = tmp_path / "live.db"
    store = Store(db)
    for n in range(300):
        file_ticket(store, n)
    store.close()
    backup = tmp_path / "b.db"
    assert main(["db", "backup", str(backup), "--db", str(db)]) == 0
    data = bytearray(backup.read_bytes())
    data[len(data) // 2 : len(data) // 2 + 4096] = b"\x00" * 4096  # a damaged page
    damaged = tmp_path / "damaged.db"
    damaged.write_bytes(bytes(data))
    capsys.readouterr()
    assert main(["db", "check", str(damaged)]) == 1
    assert "NOT usable for a restore" in capsys.readouterr().err
    foreign = tmp_path / "foreign.db"
    sqlite3.connect(foreign).execute("CREATE TABLE t (x TEXT)").connection.close()
    assert main(["db", "check", str(foreign)]) == 1
    assert "not a tongxin database" in capsys.readouterr().err
    assert main(["db", "check", str(tmp_path / "missing.db")]) == 1
