"""The dispatcher's guarantees around personal data and platform retries."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from bot.app import build_core
from bot.settings import Settings
from flows.messages import IncomingMessage
from flows.paths import default_data_dir
from nlu.parser import Parser
from nlu.rasa_backend import RasaClient

VALID_ID = "11010519491231002X"


@pytest.fixture
def rasa_server() -> Iterator[tuple[str, list[str]]]:
    received: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            text = json.loads(body)["text"]
            received.append(text)
            answer = {"text": text, "intent": {"name": "dispute_mediation", "confidence": 0.95}}
            data = json.dumps(answer, ensure_ascii=False).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", received
    httpd.shutdown()
    httpd.server_close()


def test_a_remote_nlu_server_never_sees_an_id_number(
    tmp_path: Path, nlu_parser: Parser, rasa_server: tuple[str, list[str]]
) -> None:
    url, received = rasa_server
    parser = Parser(
        nlu_parser.tokenizer,
        nlu_parser.model,
        fallback_threshold=nlu_parser.fallback_threshold,
        ambiguity_threshold=nlu_parser.ambiguity_threshold,
        remote=RasaClient(url, timeout=2.0),
    )
    core = build_core(
        Settings(db_path=tmp_path / "t.db", data_dir=default_data_dir()), parser=parser
    )
    msg = IncomingMessage(
        channel="test", user_id="u1", text=f"我身份证{VALID_ID}，楼上邻居天天吵，想调解"
    )
    replies = core.dispatcher.handle(msg)
    core.close()
    assert received, "the remote NLU server was asked"
    assert all(VALID_ID not in text for text in received)
    joined = "\n".join(r.text for r in replies)
    assert "遮挡" in joined and "矛盾调解" in joined


def test_a_retry_is_answered_from_the_store_without_a_second_turn(
    tmp_path: Path, nlu_parser: Parser
) -> None:
    core = build_core(
        Settings(db_path=tmp_path / "t.db", data_dir=default_data_dir()), parser=nlu_parser
    )
    first = IncomingMessage(channel="wechat", user_id="o1", text="我想申请红色信贷", message_id="9")
    one = core.dispatcher.handle(first)
    two = core.dispatcher.handle(first)
    assert one == two
    assert len(core.store.message_log("wechat", "o1")) == 2  # one in, one out: handled once
    core.close()


@pytest.mark.parametrize("value", ["-1", "0", "nan", "inf", "soon"])
def test_bad_idle_timeout_is_refused(value: str) -> None:
    from bot.settings import SettingsError

    with pytest.raises(SettingsError, match="TONGXIN_FORM_IDLE_MINUTES"):
        Settings.from_env({"TONGXIN_FORM_IDLE_MINUTES": value})


def test_settings_read_the_environment() -> None:
    settings = Settings.from_env(
        {"TONGXIN_DB": " /tmp/x.db ", "TONGXIN_STAFF_USER_IDS": "1, 2", "TONGXIN_WECHAT_TOKEN": "t"}
    )
    assert settings.db_path == Path("/tmp/x.db")
    assert settings.staff_user_ids == frozenset({1, 2})
    assert settings.wechat_token == "t" and settings.telegram_token is None
