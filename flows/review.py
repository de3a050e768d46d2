"""The review queue: messages the bot did not place, collected for staff to label.

A message lands here when the NLU answered `nlu_fallback` or was unsure
(`LOW_CONFIDENCE`), or when the FAQ had no answer for it. Each distinct
message (after masking and normalising) is one row with a count, first and
last sighting and the bot's best guesses; no channel or user id is kept, so a
row is not personal data of anyone in particular. ID numbers and phone
numbers are masked before the text reaches the database.

Staff then label a row (an intent, an FAQ entry, "needs a new FAQ entry") or
dismiss it; `flows.review_labels` writes the labels to the operator's data
files. The SQL lives in this one module.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from flows.store import Store, iso, utcnow
from nlu.entities import mask_personal_data
from nlu.tokenizer import normalize_text
from nlu.types import FALLBACK_INTENT, INTENTS, ParseResult

# Below this top confidence an answered intent is still worth a look: the
# calibrated confidences mean about 60% of such answers are right.
LOW_CONFIDENCE = 0.6
KINDS: tuple[str, ...] = ("intent", "faq")
STATUSES: tuple[str, ...] = ("open", "labelled", "new_faq", "dismissed")
MAX_TEXT_CHARS = 300
GUESSES = 3
_NOT_CONTENT = re.compile(r"[\W_]+")


class ReviewError(ValueError):
    """A label that cannot be applied as asked (unknown intent, entry or item)."""


class FaqGuess(Protocol):
    @property
    def id(self) -> str: ...
    @property
    def score(self) -> float: ...


def review_key(kind: str, text: str) -> str:
    """One row per kind and normalised text: 你好呀！ and 你好呀 are the same message."""
    norm = _NOT_CONTENT.sub("", normalize_text(text))
    return kind + ":" + hashlib.sha256(norm.encode("utf-8")).hexdigest()[:24]


def needs_review(parse: ParseResult) -> bool:
    return parse.intent.name == FALLBACK_INTENT or parse.intent.confidence < LOW_CONFIDENCE


@dataclass(frozen=True)
class ReviewItem:
    key: str
    kind: str
    text: str
    count: int
    first_seen: str
    last_seen: str
    guesses: dict[str, Any]
    status: str
    label_kind: str | None
    label: str | None
    labelled_by: str | None
    labelled_at: str | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "kind": self.kind,
            "text": self.text,
            "count": self.count,
            "first_seen": self.first_seen,
            "last_seen": self.last_seen,
            "guesses": self.guesses,
            "status": self.status,
            "label_kind": self.label_kind,
            "label": self.label,
            "labelled_by": self.labelled_by,
            "labelled_at": self.labelled_at,
        }


def _item(row: dict[str, Any]) -> ReviewItem:
    try:
        guesses = json.loads(row["guesses"] or "{}")
    except ValueError:
        guesses = {}
    return ReviewItem(
        key=row["key"],
        kind=row["kind"],
        text=row["text"],
        count=int(row["count"]),
        first_seen=row["first_seen"],
        last_seen=row["last_seen"],
        guesses=guesses if isinstance(guesses, dict) else {},
        status=row["status"],
        label_kind=row["label_kind"],
        label=row["label"],
        labelled_by=row["labelled_by"],
        labelled_at=row["labelled_at"],
    )


class ReviewQueue:
    """The review rows of one store. `record` runs inside the turn's transaction:
    one upsert, nothing read."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def record(
        self,
        kind: str,
        text: str,
        parse: ParseResult,
        faq: Sequence[FaqGuess] = (),
        now: datetime | None = None,
    ) -> None:
        safe = mask_personal_data(text, mask_phones=True).strip()[:MAX_TEXT_CHARS]
        if not _NOT_CONTENT.sub("", safe):
            return
        guesses = {
            "intents": [
                [s.name, round(float(s.confidence), 3)] for s in parse.intent_ranking[:GUESSES]
            ],
            "faq": [[m.id, round(float(m.score), 3)] for m in list(faq)[:GUESSES]],
        }
        at = iso(now or utcnow())
        self.store._exec(
            "INSERT INTO review_items(key, kind, text, count, first_seen, last_seen, guesses,"
            " status) VALUES (?, ?, ?, 1, ?, ?, ?, 'open') ON CONFLICT(key) DO UPDATE SET"
            " count = review_items.count + 1, last_seen = excluded.last_seen,"
            " guesses = excluded.guesses",
            (review_key(kind, safe), kind, safe, at, at, json.dumps(guesses, ensure_ascii=False)),
        )

    def items(
        self, *, kind: str | None = None, status: str | None = "open", limit: int = 200
    ) -> list[ReviewItem]:
        """Most frequent first, then most recent."""
        where, params = [], []
        if kind:
            where.append("kind = ?")
            params.append(kind)
        if status:
            where.append("status = ?")
            params.append(status)
        sql = "SELECT * FROM review_items" + (" WHERE " + " AND ".join(where) if where else "")
        sql += " ORDER BY count DESC, last_seen DESC LIMIT ?"
        return [_item(r) for r in self.store._rows(sql, (*params, limit))]

    def counts(self) -> dict[str, int]:
        rows = self.store._rows("SELECT status, COUNT(*) AS n FROM review_items GROUP BY status")
        found = {str(r["status"]): int(r["n"]) for r in rows}
        return {s: found.get(s, 0) for s in STATUSES}

    def get(self, key: str) -> ReviewItem:
        row = self.store._one("SELECT * FROM review_items WHERE key = ?", (key,))
        if row is None:
            raise ReviewError(f"no review item {key}")
        return _item(row)

    def labelled(self, label_kind: str) -> list[ReviewItem]:
        rows = self.store._rows(
            "SELECT * FROM review_items WHERE status = 'labelled' AND label_kind = ?"
            " ORDER BY first_seen, key",
            (label_kind,),
        )
        return [_item(r) for r in rows]

    def set_status(
        self,
        key: str,
        status: str,
        by: str,
        *,
        label_kind: str | None = None,
        label: str | None = None,
    ) -> ReviewItem:
        if status not in STATUSES:
            raise ReviewError(f"unknown status {status!r}; one of: {', '.join(STATUSES)}")
        if label_kind == "intent" and label not in INTENTS:
            raise ReviewError(f"unknown intent {label!r}; one of: {', '.join(INTENTS)}")
        self.get(key)
        self.store._exec(
            "UPDATE review_items SET status = ?, label_kind = ?, label = ?, labelled_by = ?,"
            " labelled_at = ? WHERE key = ?",
            (status, label_kind, label, by, iso(utcnow()), key),
        )
        return self.get(key)
