"""A Core of its own for the review queue tests: a copy of the data folder (labels
are written there) and a copy of the session's intent model (the gate replaces
it), sharing the session's FAQ ranker cache so that it is fitted once."""

from __future__ import annotations

import shutil
from pathlib import Path

from bot.app import Core, build_core
from bot.settings import Settings
from bot.workspace.accounts import add_account, load_routing
from flows.faq_retrieval import CACHE_SUBDIR
from flows.paths import default_data_dir, operator_nlu_dir
from flows.workspace_store import WorkspaceStore
from nlu.settings import NluSettings
from tests.bot.workspace.conftest import ACCOUNTS, PASSWORD, SECRET

# A valid resident ID number (checksum X) and a mobile number.
ID_NUMBER = "11010519491231002X"
PHONE = "13912345678"


def private_model_dir(session_model_dir: Path, target: Path) -> Path:
    target.mkdir(parents=True)
    for path in session_model_dir.iterdir():
        if path.name == CACHE_SUBDIR:
            continue
        if path.is_dir():
            shutil.copytree(path, target / path.name)
        elif path.name == "metadata.json" or path.name.startswith("arrays-"):
            shutil.copy2(path, target / path.name)
    shared = session_model_dir / CACHE_SUBDIR
    shared.mkdir(exist_ok=True)
    (target / CACHE_SUBDIR).symlink_to(shared, target_is_directory=True)
    return target


def review_core(tmp_path: Path, session_model_dir: Path) -> Core:
    data_dir = tmp_path / "data"
    shutil.copytree(default_data_dir(), data_dir)
    model_dir = private_model_dir(session_model_dir, tmp_path / "model")
    settings = Settings(
        db_path=tmp_path / "tongxin.db",
        data_dir=data_dir,
        secret_key=SECRET,
        nlu=NluSettings(model_dir=model_dir, operator_data=(operator_nlu_dir(data_dir),)),
    )
    core = build_core(settings, inline_outbox=frozenset({"shell"}))
    ws = WorkspaceStore(core.store)
    routing = load_routing(data_dir)
    for name, (role, department) in ACCOUNTS.items():
        add_account(ws, name, PASSWORD, role, department, routing)
    return core
