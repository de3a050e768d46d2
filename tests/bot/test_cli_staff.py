"""The staff commands: tickets, volunteers, privacy and outbox, as staff type them."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bot.cli.main import build_parser, main
from flows.store import FORGOTTEN_USER_ID, MIGRATIONS, Store

TICKET_KEYS = {"id", "kind", "status", "channel", "user_id", "phone", "fields"}
TICKET_KEYS |= {"created_at", "updated_at"}
VOLUNTEER_KEYS = {"id", "name", "phone", "team", "channel", "user_id", "created_at"}


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "tongxin.db"


@pytest.fixture
def seeded(db: Path) -> dict[str, str]:
    """Three tickets from two users and a volunteer; returns the ticket ids by kind."""
    s = Store(db)
    ids = {}
    for kind, user, phone, fields in (
        ("legal_aid", "u1", "13911112222", {"name": "王小明", "what": "老板拖欠工资三个月"}),
        ("microloan", "u1", "13911112222", {"business": "小吃店", "amount": 50000}),
        ("report_issue", "oWx2", None, {"what": "路灯坏了", "where": "幸福路"}),
    ):
        ticket, _ = s.create_ticket(
            kind=kind,
            department="desk",
            channel="wechat" if user.startswith("o") else "shell",
            user_id=user,
            phone=phone,
            fields=fields,
        )
        ids[kind] = ticket.id
    s.add_volunteer(
        name="李四",
        phone="13800001111",
        team="家电维修",
        skill="修家电",
        availability="周末",
        channel="wechat",
        user_id="oVol",
    )
    s.close()
    return ids


def run(db: Path, *argv: str) -> int:
    return main([*argv[:2], "--db", str(db), *argv[2:]])


def run_json(db: Path, capsys: pytest.CaptureFixture[str], *argv: str) -> Any:
    assert run(db, *argv, "--json") == 0
    return json.loads(capsys.readouterr().out)


def snapshot(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    with sqlite3.connect(path) as conn:
        names = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        return {n: conn.execute(f"SELECT * FROM {n} ORDER BY 1").fetchall() for n in names}


def assert_refused(
    db: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    before = snapshot(db)
    assert run(db, *argv) == 2
    captured = capsys.readouterr()
    assert message in captured.err
    assert captured.err.startswith("tongxin: error:")
    assert captured.out == ""
    assert snapshot(db) == before


# -- tickets list ---------------------------------------------------------


def test_list_json_has_contract_fields(
    db: Path, seeded: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    tickets = run_json(db, capsys, "tickets", "list")
    assert [t["id"] for t in tickets] == list(seeded.values())
    for t in tickets:
        assert set(t) >= TICKET_KEYS
        assert isinstance(t["fields"], dict)
        assert t["status"] == "open"
    legal = tickets[0]
    assert (legal["kind"], legal["channel"], legal["user_id"], legal["phone"]) == (
        "legal_aid",
        "shell",
        "u1",
        "13911112222",
    )
    assert legal["fields"]["what"] == "老板拖欠工资三个月"
    assert tickets[1]["fields"]["amount"] == 50000
    assert tickets[2]["phone"] is None


def test_list_json_on_an_empty_database(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    Store(db).close()
    assert run_json(db, capsys, "tickets", "list") == []


def test_list_filters(db: Path, seeded: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    assert run(db, "tickets", "resolve", seeded["microloan"], "--note", "已放款") == 0
    capsys.readouterr()
    by_status = run_json(db, capsys, "tickets", "list", "--status", "resolved")
    assert [t["id"] for t in by_status] == [seeded["microloan"]]
    by_kind = run_json(db, capsys, "tickets", "list", "--kind", "report_issue")
    assert [t["id"] for t in by_kind] == [seeded["report_issue"]]
    # A known kind with no tickets yet is an empty list, not an error.
    assert run_json(db, capsys, "tickets", "list", "--kind", "human_handoff") == []
    both = run_json(db, capsys, "tickets", "list", "--status", "open", "--kind", "microloan")
    assert both == []


def test_list_table(db: Path, seeded: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    assert run(db, "tickets", "list") == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].split()[:3] == ["id", "kind", "status"]
    for kind, ticket_id in seeded.items():
        row = next(line for line in lines if line.startswith(ticket_id))
        assert kind in row and "open" in row
    assert "13911112222" in out
    assert lines[-1] == "3 tickets"


def test_list_table_empty(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    Store(db).close()
    assert run(db, "tickets", "list", "--status", "open") == 0
    assert capsys.readouterr().out.strip() == "no tickets"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--status", "done"], "unknown status 'done'"),
        (["--kind", "legal"], "unknown kind 'legal'"),
    ],
)
def test_list_bad_filters(
    db: Path,
    seeded: dict[str, str],
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    message: str,
) -> None:
    assert_refused(db, capsys, ["tickets", "list", *argv], message)


# -- tickets show ---------------------------------------------------------


def test_show_details_and_trail(
    db: Path, seeded: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    ticket_id = seeded["legal_aid"]
    assert run(db, "tickets", "assign", ticket_id, "--to", "王律师", "--actor", "陈主任") == 0
    capsys.readouterr()
    assert run(db, "tickets", "show", ticket_id.lower()) == 0
    out = capsys.readouterr().out
    for expected in (ticket_id, "legal_aid", "法律咨询", "assigned", "王律师", "陈主任"):
        assert expected in out
    for expected in ("13911112222", "老板拖欠工资三个月", "open -> assigned"):
        assert expected in out

    shown = run_json(db, capsys, "tickets", "show", ticket_id)
    assert set(shown) >= TICKET_KEYS
    assert [(e["action"], e["actor"]) for e in shown["events"]] == [
        ("created", "user"),
        ("assigned", "陈主任"),
    ]


def test_show_unknown_ticket(
    db: Path, seeded: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert_refused(db, capsys, ["tickets", "show", "TX000101-0001"], "no ticket TX000101-0001")


# -- tickets assign / update / resolve -----------------------------------


def test_assign_update_resolve_reach_the_user(
    db: Path, seeded: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    ticket_id = seeded["legal_aid"]
    assert run(db, "tickets", "assign", ticket_id, "--to", "王律师") == 0
    out = capsys.readouterr().out
    assert f"{ticket_id}: open -> assigned" in out
    assert "王律师" in out and "outbox #" in out

    note = "已联系当事人，约周三面谈"
    assert run(db, "tickets", "update", ticket_id, "--status", "in_progress", "--note", note) == 0
    assert "assigned -> in_progress" in capsys.readouterr().out
    assert run(db, "tickets", "resolve", ticket_id, "--note", "已帮助申请劳动仲裁") == 0
    assert "in_progress -> resolved" in capsys.readouterr().out

    s = Store(db)
    ticket = s.get_ticket(ticket_id)
    messages = s.list_outbox(ticket_id=ticket_id)
    events = s.ticket_events(ticket_id)
    s.close()
    assert (ticket.status, ticket.assignee) == ("resolved", "王律师")
    assert ticket.resolved_at is not None
    assert [(m.channel, m.user_id, m.status) for m in messages] == [("shell", "u1", "pending")] * 4
    assert "王律师" in messages[0].text
    assert note in messages[1].text
    assert "已帮助申请劳动仲裁" in messages[2].text
    assert "满意吗" in messages[3].text
    assert [e.to_status for e in events] == ["open", "assigned", "in_progress", "resolved"]


def test_update_note_only(
    db: Path, seeded: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    ticket_id = seeded["report_issue"]
    assert run(db, "tickets", "update", ticket_id, "--note", "已转城管中队") == 0
    assert capsys.readouterr().out.startswith(f"{ticket_id}: open\n")
    s = Store(db)
    [message] = s.list_outbox(ticket_id=ticket_id)
    assert (message.channel, message.user_id) == ("wechat", "oWx2")
    assert "已转城管中队" in message.text
    assert s.get_ticket(ticket_id).status == "open"
    s.close()


def test_actor_defaults_to_user_env(
    db: Path,
    seeded: dict[str, str],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("USER", "zhangsan")
    assert run(db, "tickets", "resolve", seeded["microloan"], "--note", "已放款") == 0
    monkeypatch.delenv("USER")
    assert run(db, "tickets", "update", seeded["microloan"], "--note", "回访") == 0
    s = Store(db)
    actors = [e.actor for e in s.ticket_events(seeded["microloan"])]
    s.close()
    assert actors == ["user", "zhangsan", "staff"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["assign", "TX000101-0001", "--to", "王"], "no ticket TX000101-0001"),
        (["assign", "{legal_aid}", "--to", "  "], "assignee must not be empty"),
        (["update", "{legal_aid}", "--status", "closed", "--note", "x"], "cannot become closed"),
        (["update", "{legal_aid}", "--status", "finished", "--note", "x"], "unknown status"),
        (["update", "{legal_aid}", "--status", "assigned", "--note", "x"], "tickets assign"),
        (["update", "{legal_aid}", "--status", "in_progress", "--note", " "], "note must not be"),
        (["update", "TX000101-0001", "--status", "resolved", "--note", "x"], "no ticket"),
        (["resolve", "{legal_aid}", "--note", ""], "note must not be empty"),
        (["resolve", "{legal_aid}", "--note", "长" * 1001], "too long"),
        (["resolve", "TX000101-0001", "--note", "x"], "no ticket"),
    ],
)
def test_bad_changes_are_refused_and_change_nothing(
    db: Path,
    seeded: dict[str, str],
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    message: str,
) -> None:
    argv = [a.format(**seeded) if a.startswith("{") else a for a in argv]
    assert_refused(db, capsys, ["tickets", *argv], message)


def test_changes_to_a_closed_ticket_are_refused(
    db: Path, seeded: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    ticket_id = seeded["legal_aid"]
    assert run(db, "tickets", "resolve", ticket_id, "--note", "已答复") == 0
    assert run(db, "tickets", "update", ticket_id, "--status", "closed", "--note", "结单") == 0
    capsys.readouterr()
    assert_refused(db, capsys, ["tickets", "resolve", ticket_id, "--note", "x"], "closed")
    assert_refused(db, capsys, ["tickets", "assign", ticket_id, "--to", "赵"], "closed")


@pytest.mark.parametrize(
    "argv",
    [
        ["tickets", "assign", "X"],  # --to missing
        ["tickets", "update", "X", "--status", "resolved"],  # --note missing
        ["tickets", "resolve", "X"],
        ["tickets", "show"],
        ["privacy", "forget"],
    ],
)
def test_missing_required_options_exit_2(
    db: Path, seeded: dict[str, str], capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    before = snapshot(db)
    with pytest.raises(SystemExit) as exc:
        main([*argv, "--db", str(db)])
    assert exc.value.code == 2
    assert "required" in capsys.readouterr().err
    assert snapshot(db) == before


# -- tickets stats --------------------------------------------------------


def test_stats_text_and_json(
    db: Path, seeded: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(db, "tickets", "resolve", seeded["legal_aid"], "--note", "已答复") == 0
    assert (
        run(
            db,
            "tickets",
            "update",
            seeded["report_issue"],
            "--status",
            "cancelled",
            "--note",
            "重复",
        )
        == 0
    )
    capsys.readouterr()
    assert run(db, "tickets", "stats") == 0
    out = capsys.readouterr().out
    # The cancelled ticket counts on neither side of 办结率.
    assert "办结率: 50.0%" in out
    assert "median time to resolve:" in out
    stats = run_json(db, capsys, "tickets", "stats")
    assert stats["total"] == 3
    assert stats["completed"] == 1
    assert stats["completion_rate"] == pytest.approx(1 / 2)
    assert stats["median_resolve_hours"] >= 0
    assert stats["by_status"] == {"resolved": 1, "open": 1, "cancelled": 1}
    assert stats["by_kind"] == {"legal_aid": 1, "microloan": 1, "report_issue": 1}
    assert stats["by_kind_status"]["report_issue"] == {"cancelled": 1}


def test_stats_on_an_empty_database(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    Store(db).close()
    stats = run_json(db, capsys, "tickets", "stats")
    assert (stats["total"], stats["completion_rate"], stats["median_resolve_hours"]) == (
        0,
        None,
        None,
    )


# -- volunteers -----------------------------------------------------------


def test_volunteers_list(
    db: Path, seeded: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    [volunteer] = run_json(db, capsys, "volunteers", "list")
    assert set(volunteer) >= VOLUNTEER_KEYS
    assert (volunteer["name"], volunteer["phone"], volunteer["team"]) == (
        "李四",
        "13800001111",
        "家电维修",
    )
    assert (volunteer["channel"], volunteer["user_id"]) == ("wechat", "oVol")
    assert run(db, "volunteers", "list") == 0
    out = capsys.readouterr().out
    assert volunteer["id"] in out and "李四" in out and "家电维修" in out


def test_volunteers_list_empty(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    Store(db).close()
    assert run_json(db, capsys, "volunteers", "list") == []
    assert run(db, "volunteers", "list") == 0
    assert capsys.readouterr().out.strip() == "no volunteer signups"


# -- privacy forget -------------------------------------------------------


def test_forget_needs_confirmation(
    db: Path, seeded: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert_refused(db, capsys, ["privacy", "forget", "--user", "u1"], "--yes")


def test_forget_erases_and_keeps_statistics(
    db: Path, seeded: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(db, "tickets", "resolve", seeded["legal_aid"], "--note", "已答复") == 0
    capsys.readouterr()
    stats_before = run_json(db, capsys, "tickets", "stats")

    assert run(db, "privacy", "forget", "--user", "u1", "--yes") == 0
    out = capsys.readouterr().out
    assert "u1" in out
    assert "tickets anonymised (kept for statistics)  2" in out
    assert "queued messages deleted" in out

    assert run_json(db, capsys, "tickets", "stats") == stats_before
    tickets = {t["id"]: t for t in run_json(db, capsys, "tickets", "list")}
    for kind in ("legal_aid", "microloan"):
        ticket = tickets[seeded[kind]]
        assert (ticket["user_id"], ticket["phone"]) == (FORGOTTEN_USER_ID, None)
        assert "王小明" not in json.dumps(ticket, ensure_ascii=False)
    assert tickets[seeded["report_issue"]]["user_id"] == "oWx2"
    raw = b"".join(p.read_bytes() for p in db.parent.iterdir() if p.name.startswith(db.name))
    assert b"13911112222" not in raw
    assert "王小明".encode() not in raw

    # Nothing left to erase: said clearly, nothing changes.
    assert_refused(db, capsys, ["privacy", "forget", "--user", "u1", "--yes"], "nothing stored")


def test_forget_one_channel(
    db: Path, seeded: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert_refused(
        db,
        capsys,
        ["privacy", "forget", "--user", "oVol", "--channel", "shell", "--yes"],
        "nothing",
    )
    assert run(db, "privacy", "forget", "--user", "oVol", "--channel", "wechat", "--yes") == 0
    assert "volunteer signups deleted                 1" in capsys.readouterr().out
    assert run_json(db, capsys, "volunteers", "list") == []


def test_forget_refuses_the_placeholder_user(
    db: Path, seeded: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(db, "privacy", "forget", "--user", "u1", "--yes") == 0
    capsys.readouterr()
    argv = ["privacy", "forget", "--user", FORGOTTEN_USER_ID, "--yes"]
    assert_refused(db, capsys, argv, "already anonymised")


# -- outbox ---------------------------------------------------------------


def test_outbox_list_shows_failed_deliveries(
    db: Path, seeded: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(db, "tickets", "update", seeded["report_issue"], "--note", "已派单") == 0
    assert run(db, "tickets", "assign", seeded["legal_aid"], "--to", "王律师") == 0
    capsys.readouterr()
    s = Store(db)
    failed, sent = (m.id for m in s.list_outbox())
    s.mark_outbox_failed(
        failed, "wechat errcode 45015: response out of time limit", retry_in_s=None
    )
    s.mark_outbox_sent(sent)
    s.close()

    items = run_json(db, capsys, "outbox", "list", "--status", "failed")
    assert [(i["id"], i["status"], i["channel"], i["user_id"]) for i in items] == [
        (failed, "failed", "wechat", "oWx2")
    ]
    assert items[0]["last_error"] == "wechat errcode 45015: response out of time limit"
    assert items[0]["ticket_id"] == seeded["report_issue"]
    assert "已派单" in items[0]["text"]
    assert [i["id"] for i in run_json(db, capsys, "outbox", "list")] == [failed, sent]

    assert run(db, "outbox", "list", "--status", "failed") == 0
    out = capsys.readouterr().out
    assert "45015" in out and "oWx2" in out
    assert out.splitlines()[-1] == "1 message"
    assert run(db, "outbox", "list", "--status", "pending") == 0
    assert capsys.readouterr().out.strip() == "no messages"


def test_outbox_bad_status(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert_refused(db, capsys, ["outbox", "list", "--status", "lost"], "unknown status 'lost'")


# -- the database ---------------------------------------------------------


def test_database_from_the_future_is_a_clean_error(
    db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with sqlite3.connect(db) as conn:
        conn.execute(f"PRAGMA user_version={len(MIGRATIONS) + 1}")
    for argv in (["tickets", "list"], ["volunteers", "list"], ["outbox", "list"]):
        assert_refused(db, capsys, argv, "Upgrade tongxin")


def test_db_from_environment(
    db: Path,
    seeded: dict[str, str],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TONGXIN_DB", str(db))
    assert main(["tickets", "list", "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)) == 3


def test_every_staff_command_documents_an_example() -> None:
    parser = build_parser()
    groups = {
        "tickets": ["list", "show", "assign", "update", "resolve", "stats"],
        "volunteers": ["list"],
        "privacy": ["forget"],
        "outbox": ["list"],
    }
    top = next(a for a in parser._actions if a.dest == "command")
    for group, actions in groups.items():
        group_parser = top.choices[group]  # type: ignore[index]
        sub = next(a for a in group_parser._actions if a.dest.endswith("_command"))
        for action in actions:
            help_text = sub.choices[action].format_help()
            assert "example:" in help_text and f"tongxin {group} {action}" in help_text
            assert "--db" in help_text


# -- as a real process ----------------------------------------------------


def tongxin(db: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TONGXIN_DB": str(db), "PYTHONIOENCODING": "utf-8"}
    return subprocess.run(
        [sys.executable, "-m", "bot.cli.main", *argv],
        capture_output=True,
        text=True,
        encoding="utf-8",
        env=env,
        timeout=60,
        check=False,
    )


def test_process_json_and_error_exit(db: Path, seeded: dict[str, str]) -> None:
    listed = tongxin(db, "tickets", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    assert [t["id"] for t in json.loads(listed.stdout)] == list(seeded.values())

    before = snapshot(db)
    refused = tongxin(
        db, "tickets", "update", seeded["legal_aid"], "--status", "closed", "--note", "x"
    )
    assert refused.returncode == 2
    assert "cannot become closed" in refused.stderr
    assert refused.stdout == ""
    assert snapshot(db) == before

    resolved = tongxin(db, "tickets", "resolve", seeded["legal_aid"], "--note", "已答复")
    assert resolved.returncode == 0, resolved.stderr
    assert "open -> resolved" in resolved.stdout
