"""A real Core on a temp SQLite file with the workspace switched on, staff
accounts of each role, and tickets of two departments filed through the bot."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from starlette.testclient import TestClient

from bot.app import Core, build_core
from bot.settings import Settings
from bot.web import create_app
from bot.workspace.accounts import add_account, load_routing
from flows.paths import default_data_dir
from flows.workspace_store import WorkspaceStore
from nlu.parser import Parser

SECRET = "test-secret-key-0123456789"
PASSWORD = "correct horse battery"
LEGAL = "法律服务工作站"
MEDIATION = "和和家调解室"

# name -> (role, department)
ACCOUNTS: dict[str, tuple[str, str | None]] = {
    "admin": ("admin", None),
    "王律师": ("staff", LEGAL),
    "李律师": ("staff", LEGAL),
    "调解员": ("staff", MEDIATION),
    "查看员": ("viewer", None),
}


@pytest.fixture
def ws_db(tmp_path: Path) -> str | Path:
    """The workspace's database: a SQLite file (test_workspace_api.py runs on
    both backends by overriding this with `db_target`)."""
    return tmp_path / "tongxin.db"


@pytest.fixture
def ws_core(ws_db: str | Path, nlu_parser: Parser) -> Iterator[Core]:
    settings = Settings(db_path=ws_db, data_dir=default_data_dir(), secret_key=SECRET)
    core = build_core(settings, parser=nlu_parser, inline_outbox=frozenset({"shell"}))
    ws = WorkspaceStore(core.store)
    routing = load_routing(settings.data_dir)
    for name, (role, department) in ACCOUNTS.items():
        add_account(ws, name, PASSWORD, role, department, routing)
    yield core
    core.close()


@dataclass
class Tickets:
    legal: str  # 王小明's wage claim, filed on the shell by user "resident1"
    mediation: str  # a noise dispute from "resident2"


@pytest.fixture
def tickets(ws_core: Core) -> Tickets:
    store = ws_core.store
    legal, _ = store.create_ticket(
        kind="legal_aid",
        department=LEGAL,
        channel="shell",
        user_id="resident1",
        phone="13912345678",
        fields={"description": "老板拖欠工资三个月", "name": "王小明", "phone": "13912345678"},
    )
    mediation, _ = store.create_ticket(
        kind="dispute_mediation",
        department=MEDIATION,
        channel="wechat",
        user_id="oResident2",
        phone="13800001111",
        fields={"description": "楼上邻居半夜吵闹", "name": "赵大妈", "attachments": ["MEDIA_ID_1"]},
    )
    store.log_message("shell", "resident1", "in", "老板拖欠工资三个月，电话139****5678")
    store.log_message("shell", "resident1", "out", "好的，请问您怎么称呼？")
    return Tickets(legal.id, mediation.id)


def add_volunteer(core: Core, name: str, team: str, phone: str = "13800002222") -> str:
    """A signup as the bot files it; returns its id."""
    vol, _ = core.store.add_volunteer(
        name=name,
        phone=phone,
        team=team,
        skill=team,
        availability="周末",
        channel="shell",
        user_id=f"r-{name}",
    )
    return vol.id


@pytest.fixture
def app_client(ws_core: Core) -> Iterator[TestClient]:
    with TestClient(create_app(ws_core, []), base_url="http://testserver") as client:
        yield client


def login(client: httpx.Client | TestClient, name: str, password: str = PASSWORD) -> str:
    """Sign in; returns the CSRF token for changes."""
    res = client.post(
        "/staff/login", data={"username": name, "password": password}, follow_redirects=False
    )
    assert res.status_code == 303, res.text
    session = client.get("/staff/api/session")
    assert session.status_code == 200
    return str(session.json()["csrf_token"])


@pytest.fixture
def as_user(ws_core: Core) -> Iterator[object]:
    """as_user(name) -> (client, csrf): a separate signed-in client per account."""
    clients: list[TestClient] = []

    def make(name: str) -> tuple[TestClient, str]:
        client = TestClient(create_app(ws_core, []), base_url="http://testserver")
        clients.append(client)
        return client, login(client, name)

    yield make
    for c in clients:
        c.close()
