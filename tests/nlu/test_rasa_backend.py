"""The Rasa backend against a real local HTTP server: used when it answers well,
the embedded model when it is slow, down or answers garbage."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from nlu.parser import Parser
from nlu.rasa_backend import RasaClient, RasaResponseError, validate_rasa_response
from nlu.types import FALLBACK_INTENT

SLOW_SECONDS = 2.0


def rasa_answer(text: str) -> dict[str, Any]:
    return {
        "text": text,
        "intent": {"name": "legal_aid", "confidence": 0.91},
        "intent_ranking": [
            {"name": "legal_aid", "confidence": 0.91},
            {"name": "nlu_fallback", "confidence": 0.4},
            {"name": "dispute_mediation", "confidence": 0.05},
        ],
        "entities": [
            {
                "entity": "ticket_id",
                "value": "tx2611260042",
                "start": 0,
                "end": 2,
                "extractor": "RegexEntityExtractor",
            },
            {"entity": "id_number", "value": "clear text", "start": 0, "end": 1},
            {"entity": "place", "value": "巴扎", "start": 0, "end": 1},
        ],
    }


class RasaLike(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        text = json.loads(self.rfile.read(length).decode("utf-8"))["text"]
        mode = self.path.split("/")[1]
        status, body = 200, json.dumps(rasa_answer(text), ensure_ascii=False)
        if mode == "slow":
            time.sleep(SLOW_SECONDS)
        elif mode == "garbage":
            body = "<html>502 Bad Gateway</html>"
        elif mode == "unknown-intent":
            body = json.dumps({"text": text, "intent": {"name": "book_flight", "confidence": 0.9}})
        elif mode == "bad-confidence":
            body = json.dumps({"text": text, "intent": {"name": "greet", "confidence": 1.7}})
        elif mode == "error":
            status, body = 500, "{}"
        elif mode != "good":
            status, body = 404, "{}"
        data = body.encode("utf-8")
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up waiting, as it should

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), RasaLike)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def with_remote(nlu_parser: Parser, url: str, timeout: float = 0.3) -> Parser:
    return Parser(
        nlu_parser.tokenizer,
        nlu_parser.model,
        fallback_threshold=nlu_parser.fallback_threshold,
        ambiguity_threshold=nlu_parser.ambiguity_threshold,
        remote=RasaClient(url, timeout=timeout),
    )


def test_a_good_answer_is_used_and_our_entities_are_merged(nlu_parser: Parser, server: str) -> None:
    parser = with_remote(nlu_parser, f"{server}/good")
    text = "TX你好，想贷五万"
    result = parser.parse(text)
    assert result.intent.name == "legal_aid"  # the embedded model would not say so
    assert [s.name for s in result.intent_ranking] == ["legal_aid", "dispute_mediation"]
    found = {(e.entity, e.value, e.extractor) for e in result.entities}
    assert ("amount", 50000, "tongxin_rules") in found
    assert ("ticket_id", "TX261126-0042", "RegexEntityExtractor") in found
    assert all(e.entity != "id_number" and e.entity != "place" for e in result.entities)


@pytest.mark.parametrize(
    "mode", ["slow", "garbage", "unknown-intent", "bad-confidence", "error", "missing"]
)
def test_falls_back_to_the_embedded_model(nlu_parser: Parser, server: str, mode: str) -> None:
    parser = with_remote(nlu_parser, f"{server}/{mode}")
    started = time.monotonic()
    result = parser.parse("你好")
    elapsed = time.monotonic() - started
    assert result.to_dict() == nlu_parser.parse("你好").to_dict()
    assert elapsed < SLOW_SECONDS / 2  # did not wait for the slow server


def test_no_server_at_all(nlu_parser: Parser) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    parser = with_remote(nlu_parser, f"http://127.0.0.1:{port}")
    assert parser.parse("谢谢").to_dict() == nlu_parser.parse("谢谢").to_dict()


def test_our_thresholds_apply_to_rasa_rankings(nlu_parser: Parser, server: str) -> None:
    remote = RasaClient(f"{server}/good", timeout=0.3)
    strict = Parser(
        nlu_parser.tokenizer,
        nlu_parser.model,
        fallback_threshold=0.95,
        ambiguity_threshold=0.1,
        remote=remote,
    )
    result = strict.parse("随便")
    assert result.intent.name == FALLBACK_INTENT
    assert result.intent_ranking[0].name == "legal_aid"


GOOD = {"text": "x", "intent": {"name": "greet", "confidence": 0.8}}


@pytest.mark.parametrize(
    "payload",
    [
        None,
        [],
        "greet",
        {"text": "x"},
        {"text": "x", "intent": {"name": None, "confidence": 0.8}},
        {"text": "x", "intent": {"name": "greet", "confidence": "0.8"}},
        {"text": "x", "intent": {"name": "greet", "confidence": True}},
        {"text": "x", "intent": {"name": "greet", "confidence": float("nan")}},
        {"text": "x", "intent": {"name": "greet", "confidence": -0.1}},
        {"text": "y", "intent": {"name": "greet", "confidence": 0.8}},
        {**GOOD, "intent_ranking": {"greet": 0.8}},
        {**GOOD, "intent_ranking": [{"name": "greet", "confidence": 2}]},
        {**GOOD, "entities": "amount"},
        {"text": "x", "intent": {"name": FALLBACK_INTENT, "confidence": 0.3}},
    ],
)
def test_validation_rejects_garbage(payload: Any) -> None:
    with pytest.raises(RasaResponseError):
        validate_rasa_response(payload, "x")


def test_validation_accepts_a_minimal_answer() -> None:
    parsed = validate_rasa_response(GOOD, "x")
    assert parsed.ranking == [("greet", 0.8)] and parsed.entities == []


def test_which_backend_answered_is_reported(nlu_parser: Parser, server: str) -> None:
    assert nlu_parser.parse("你好").backend == "embedded"
    assert nlu_parser.backend_status() == {"backend": "embedded"}
    parser = with_remote(nlu_parser, f"{server}/good")
    assert parser.parse("你好").backend == "rasa"
    status = parser.backend_status()["rasa"]
    assert status["last_answer_from"] == "rasa" and status["rasa_answers"] == 1
    broken = with_remote(nlu_parser, f"{server}/garbage")
    assert broken.parse("你好").backend == "embedded"
    status = broken.backend_status()["rasa"]
    assert status["last_answer_from"] == "embedded" and status["embedded_fallbacks"] == 1
    assert status["last_problem"].startswith("unusable answer")


def test_a_server_that_comes_back_is_asked_again(nlu_parser: Parser) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    parser = with_remote(nlu_parser, f"http://127.0.0.1:{port}/good")
    assert [parser.parse("你好").backend for _ in range(3)] == ["embedded"] * 3
    httpd = ThreadingHTTPServer(("127.0.0.1", port), RasaLike)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        assert parser.parse("你好").backend == "rasa"
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_the_status_keeps_credentials_out() -> None:
    client = RasaClient("http://bot:secret@127.0.0.1:5005/?token=abc", timeout=0.3)
    assert client.status()["url"] == "http://127.0.0.1:5005"
