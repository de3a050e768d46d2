"""The store's database from the command line: a file made by the first
release keeps working, `--db`/`TONGXIN_DB` take a PostgreSQL URL (its
password never shown), `tongxin db migrate`, and `tongxin db copy` from SQLite
to PostgreSQL and back, verified."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import pytest

import flows.store as store_module
from bot.cli.main import main
from flows.store import MIGRATIONS, Store, Ticket
from tests.pg_server import PASSWORD, PgServer, database_text

FIRST_RELEASE = Path(__file__).parents[1] / "fixtures" / "store_v1.db"


def _schema(path: Path) -> dict[str, Any]:
    """Tables with their columns (name, type, not null, default, key) and indexes."""
    with sqlite3.connect(path) as conn:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        return {
            "tables": {t: conn.execute(f"PRAGMA table_info({t})").fetchall() for t in tables},
            "indexes": sorted(
                conn.execute(
                    "SELECT name, tbl_name FROM sqlite_master WHERE type='index'"
                ).fetchall()
            ),
        }


def test_a_file_made_by_the_first_release_opens_and_keeps_working(tmp_path: Path) -> None:
    path = tmp_path / "tongxin.db"
    shutil.copy(FIRST_RELEASE, path)
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 1
    s = Store(path)
    assert s.schema_version() == len(MIGRATIONS)
    [old] = s.list_tickets()
    assert (old.id, old.status, old.assignee) == ("TX261202-0001", "assigned", "王")
    assert old.fields == {"description": "路灯坏了"}
    assert [e.action for e in s.ticket_events(old.id)] == ["created", "assigned"]
    assert s.load_conversation("wechat", "o-old") == {"active": None}
    # Ids handed out by the database go on after the old rows.
    [queued] = s.list_outbox()
    assert s.enqueue("wechat", "o-old", "又一条") == queued.id + 1
    s.change_ticket(old.id, actor="staff", status="resolved")
    assert s.get_ticket(old.id).status == "resolved"
    s.close()


def test_a_new_file_has_the_first_release_schema_at_version_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store_module, "MIGRATIONS", MIGRATIONS[:1])
    Store(tmp_path / "new.db").close()
    assert _schema(tmp_path / "new.db") == _schema(FIRST_RELEASE)


def street_light(store: Store, user_id: str) -> Ticket:
    ticket, _ = store.create_ticket(
        kind="report_issue",
        department="网格",
        channel="wechat",
        user_id=user_id,
        phone=None,
        fields={"what": "路灯坏了"},
    )
    return ticket


def test_a_postgresql_url_in_db_or_the_environment_is_a_database_not_a_folder(
    pg_server: PgServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    url = pg_server.fresh_database()
    s = Store(url)
    ticket = street_light(s, "oA")
    s.close()
    assert main(["tickets", "list", "--json", "--db", url]) == 0
    assert [t["id"] for t in json.loads(capsys.readouterr().out)] == [ticket.id]
    monkeypatch.setenv("TONGXIN_DB", url)
    assert main(["tickets", "show", ticket.id]) == 0
    assert "路灯坏了" in capsys.readouterr().out
    assert list(tmp_path.iterdir()) == []  # no folder named "postgresql:"

    wrong = url.replace(PASSWORD, "not-the-password")
    assert main(["tickets", "list", "--db", wrong]) == 2
    err = capsys.readouterr().err
    assert "password authentication failed" in err
    assert "not-the-password" not in err and PASSWORD not in err
    assert ":***@" in err


def test_db_migrate_creates_and_then_finds_the_schema(
    pg_server: PgServer, capsys: pytest.CaptureFixture[str]
) -> None:
    url = pg_server.empty_database()
    assert main(["db", "migrate", "--db", url]) == 0
    out = capsys.readouterr().out
    assert f"schema version 0 → {len(MIGRATIONS)}" in out and PASSWORD not in out
    assert main(["db", "migrate", "--db", url]) == 0
    assert "up to date" in capsys.readouterr().out


def test_db_copy_sqlite_to_postgresql_and_back_keeps_every_row(
    pg_server: PgServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    office = tmp_path / "office.db"
    shutil.copy(FIRST_RELEASE, office)
    s = Store(office)
    for i in range(30):
        s.create_ticket(
            kind="dispute_mediation",
            department="和和家调解室",
            channel="wechat",
            user_id=f"o{i}",
            phone="13912345678",
            fields={"what": f"邻居噪音 {i}", "amount": 1.5 * i},
        )
        s.kv_set(f"k{i}", "v", ttl_s=3600.25)
    before = database_text(s)
    s.close()
    city = pg_server.empty_database()
    assert main(["db", "copy", "--from", str(office), "--to", city]) == 0
    out = capsys.readouterr().out
    assert "tickets" in out and "31 rows" in out and "verified" in out
    assert PASSWORD not in out

    # A second copy into the same database is refused: nothing doubles.
    assert main(["db", "copy", "--from", str(office), "--to", city]) == 2
    assert "already holds data" in capsys.readouterr().err

    pg = Store(city)
    assert len(pg.list_tickets()) == 31
    # The city's database goes on handing out ids and ticket numbers after the copied ones.
    ticket = street_light(pg, "oNew")
    assert ticket.id not in {t.id for t in Store(office, read_only=True).list_tickets()}
    pg.close()

    back = tmp_path / "back.db"
    assert main(["db", "copy", "--from", city, "--to", str(back)]) == 0
    capsys.readouterr()
    s = Store(back)
    assert len(s.list_tickets()) == 32
    s.close()
    # Copying changed nothing in the source.
    s = Store(office, read_only=True)
    assert database_text(s) == before
    s.close()


def test_privacy_forget_erases_on_postgresql(
    pg_server: PgServer, capsys: pytest.CaptureFixture[str]
) -> None:
    url = pg_server.fresh_database()
    s = Store(url)
    s.create_ticket(
        kind="legal_aid",
        department="法律服务工作站",
        channel="wechat",
        user_id="oForget",
        phone="13955556666",
        fields={"name": "孙七"},
    )
    s.log_message("wechat", "oForget", "in", "我叫孙七")
    s.close()
    assert main(["privacy", "forget", "--user", "oForget", "--yes", "--db", url]) == 0
    capsys.readouterr()
    s = Store(url)
    text = database_text(s)
    s.close()
    assert "13955556666" not in text and "孙七" not in text
