"""Shared fixtures: one trained NLU parser per session, a real Core on a temp
SQLite file per test, a real PostgreSQL server per session (`db_target` runs a
test on both backends), and a collecting channel that says messages and keeps
the replies."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from bot.app import Core, build_core
from bot.settings import Settings
from flows.messages import IncomingMessage, Reply
from flows.paths import default_data_dir
from nlu.parser import Parser, load_parser
from nlu.settings import NluSettings
from tests.pg_server import PgServer


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    server = PgServer()
    yield server
    server.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_target(request: pytest.FixtureRequest, tmp_path: Path) -> str | Path:
    """A fresh database on each backend: a SQLite file, or a PostgreSQL URL."""
    if request.param == "sqlite":
        return tmp_path / "tongxin.db"
    server: PgServer = request.getfixturevalue("pg_server")
    return server.fresh_database()


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A private model dir: tests never depend on a model trained by hand."""
    return tmp_path_factory.mktemp("model")


@pytest.fixture(scope="session")
def nlu_parser(model_dir: Path) -> Parser:
    return load_parser(NluSettings(model_dir=model_dir))


@pytest.fixture
def core(tmp_path: Path, nlu_parser: Parser, model_dir: Path) -> Iterator[Core]:
    settings = Settings(
        db_path=tmp_path / "tongxin.db",
        data_dir=default_data_dir(),
        nlu=NluSettings(model_dir=model_dir),  # the FAQ model is cached beside the NLU's
    )
    built = build_core(settings, parser=nlu_parser, inline_outbox=frozenset({"shell", "test"}))
    yield built
    built.close()


@pytest.fixture
def pg_core(pg_server: PgServer, nlu_parser: Parser, model_dir: Path) -> Iterator[Core]:
    """A real Core on a fresh PostgreSQL database."""
    settings = Settings(
        db_path=pg_server.fresh_database(),
        data_dir=default_data_dir(),
        nlu=NluSettings(model_dir=model_dir),
    )
    built = build_core(settings, parser=nlu_parser, inline_outbox=frozenset({"shell", "test"}))
    yield built
    built.close()


@dataclass
class Chat:
    """A collecting channel: `say` sends one message as a user and returns the
    bot's replies joined, keeping every reply for later assertions."""

    core: Core
    user_id: str = "u1"
    channel: str = "test"
    history: list[list[Reply]] = field(default_factory=list)

    def send(self, msg: IncomingMessage) -> list[Reply]:
        replies = self.core.dispatcher.handle(msg)
        self.history.append(replies)
        return replies

    def say(self, text: str, **kwargs: object) -> str:
        msg = IncomingMessage(channel=self.channel, user_id=self.user_id, text=text, **kwargs)  # type: ignore[arg-type]
        return "\n".join(r.text for r in self.send(msg))


@pytest.fixture
def chat(core: Core) -> Chat:
    return Chat(core)
