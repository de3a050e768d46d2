"""Optional Rasa NLU server as the first opinion, the embedded model as the safety net.

`RasaClient.parse(text)` POSTs `{"text": ...}` to `{url}/model/parse` with a
short timeout and validates the answer strictly. Any failure — connection
refused, timeout, HTTP error, non-JSON, an intent that is not one of ours, a
confidence outside [0, 1] — returns None, and the parser uses its own model.
Messages are never logged (they may hold personal data); only the reason is.
"""

from __future__ import annotations

import json
import logging
import math
import re
import threading
import time
import urllib.parse
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from nlu.entities import normalise_ticket_id
from nlu.types import FALLBACK_INTENT, INTENTS, Entity

log = logging.getLogger(__name__)

MAX_RESPONSE_BYTES = 1_000_000
_PHONE_VALUE = re.compile(r"1[3-9]\d{9}")


class RasaResponseError(ValueError):
    """The server answered, but not with a /model/parse result we can trust."""


@dataclass(frozen=True)
class RemoteParse:
    ranking: list[tuple[str, float]]  # our intents only, best first
    entities: list[Entity]


def _confidence(raw: Any, where: str) -> float:
    if isinstance(raw, bool) or not isinstance(raw, int | float):
        raise RasaResponseError(f"{where}: confidence is not a number")
    value = float(raw)
    if not math.isfinite(value) or not 0.0 <= value <= 1.0:
        raise RasaResponseError(f"{where}: confidence {value!r} outside [0, 1]")
    return value


def _intent(raw: Any, where: str, labels: Collection[str]) -> tuple[str, float]:
    if not isinstance(raw, dict):
        raise RasaResponseError(f"{where} is not an object")
    name = raw.get("name")
    if not isinstance(name, str) or (name not in labels and name != FALLBACK_INTENT):
        raise RasaResponseError(f"{where}: unknown intent {name!r}")
    return name, _confidence(raw.get("confidence"), where)


def _entity(raw: Any, text: str) -> Entity | None:
    """A remote entity we can vouch for, or None (dropped, not fatal)."""
    if not isinstance(raw, dict):
        return None
    name, start, end, value = raw.get("entity"), raw.get("start"), raw.get("end"), raw.get("value")
    if not (isinstance(start, int) and isinstance(end, int) and 0 <= start < end <= len(text)):
        return None
    extractor = raw.get("extractor") if isinstance(raw.get("extractor"), str) else "rasa"
    if name == "amount":
        if isinstance(value, str) and value.isdigit():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            return None
    elif name == "phone":
        if not (isinstance(value, str) and _PHONE_VALUE.fullmatch(value)):
            return None
    elif name == "ticket_id":
        value = normalise_ticket_id(value) if isinstance(value, str) else None
        if value is None:
            return None
    else:
        # id_number values would be clear text; other names are not ours.
        return None
    return Entity(str(name), value, start, end, str(extractor))


def validate_rasa_response(
    payload: Any, text: str, labels: Collection[str] = INTENTS
) -> RemoteParse:
    """Check a /model/parse JSON answer; raise RasaResponseError when it is not trustworthy."""
    if not isinstance(payload, dict):
        raise RasaResponseError("answer is not a JSON object")
    answered = payload.get("text")
    if answered is not None and (not isinstance(answered, str) or answered.strip() != text.strip()):
        raise RasaResponseError("answer is for a different text")
    top = _intent(payload.get("intent"), "intent", labels)
    raw_ranking = payload.get("intent_ranking")
    if raw_ranking is None:
        ranking = [top]
    elif isinstance(raw_ranking, list):
        ranking = [_intent(r, f"intent_ranking[{i}]", labels) for i, r in enumerate(raw_ranking)]
    else:
        raise RasaResponseError("intent_ranking is not a list")
    # Rasa's own FallbackClassifier entry is dropped: our thresholds decide.
    ours = sorted(
        ((name, conf) for name, conf in ranking if name != FALLBACK_INTENT),
        key=lambda item: -item[1],
    )
    if not ours:
        raise RasaResponseError("no intent of ours in the ranking")
    raw_entities = payload.get("entities", [])
    if not isinstance(raw_entities, list):
        raise RasaResponseError("entities is not a list")
    entities = [e for raw in raw_entities if (e := _entity(raw, text)) is not None]
    return RemoteParse(ours, entities)


def _public_url(url: str) -> str:
    """scheme://host:port only: a token in the query or user info stays out of /healthz."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}".rstrip("/")


class RasaClient:
    """Thread-safe: every call opens its own connection, and the counters behind
    `status()` are guarded by a lock. Every message asks the server again, so a
    restarted server is used from its first good answer on."""

    def __init__(self, url: str, *, timeout: float, labels: Collection[str] = INTENTS):
        self.url = _public_url(url)
        self.endpoint = url.rstrip("/") + "/model/parse"
        self.timeout = timeout
        self.labels = frozenset(labels)
        self._lock = threading.Lock()
        self._answered = 0
        self._failed = 0
        self._last: str | None = None
        self._last_problem: str | None = None

    def _record(self, problem: str | None) -> None:
        with self._lock:
            if problem is None:
                self._answered += 1
                self._last = "rasa"
            else:
                self._failed += 1
                self._last = "embedded"
                self._last_problem = problem[:200]

    def status(self) -> dict[str, Any]:
        """For /healthz: which backend answered the last message, and how often each did."""
        with self._lock:
            return {
                "url": self.url,
                "timeout_s": self.timeout,
                "last_answer_from": self._last,
                "rasa_answers": self._answered,
                "embedded_fallbacks": self._failed,
                "last_problem": self._last_problem,
            }

    def parse(self, text: str) -> RemoteParse | None:
        import http.client
        import urllib.error
        import urllib.request

        body = json.dumps({"text": text}, ensure_ascii=False).encode("utf-8")
        request = urllib.request.Request(
            self.endpoint,
            data=body,
            headers={"Content-Type": "application/json; charset=utf-8"},
            method="POST",
        )
        started = time.monotonic()
        try:
            # The timeout bounds connect and each read; the size cap bounds the rest.
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                raw = response.read(MAX_RESPONSE_BYTES + 1)
            if len(raw) > MAX_RESPONSE_BYTES:
                raise RasaResponseError("answer too large")
            if time.monotonic() - started > self.timeout * 2:
                raise RasaResponseError("answer too slow")
            payload = json.loads(raw.decode("utf-8"))
            answer = validate_rasa_response(payload, text, self.labels)
        except (OSError, urllib.error.URLError, http.client.HTTPException) as exc:
            log.warning("Rasa server unavailable, using the embedded model: %s", exc)
            self._record(f"unavailable: {exc}")
        except (ValueError, UnicodeDecodeError) as exc:  # includes RasaResponseError, JSON errors
            log.warning("Rasa server gave an unusable answer, using the embedded model: %s", exc)
            self._record(f"unusable answer: {exc}")
        else:
            self._record(None)
            return answer
        return None
