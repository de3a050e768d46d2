"""Typed results of parsing one message, shaped like Rasa NLU's parse output."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

FALLBACK_INTENT = "nlu_fallback"

SERVICE_INTENTS: tuple[str, ...] = (
    "legal_aid",
    "microloan",
    "dispute_mediation",
    "volunteer_signup",
    "report_issue",
    "service_info",
)
DIALOGUE_INTENTS: tuple[str, ...] = (
    "ticket_status",
    "human_handoff",
    "greet",
    "goodbye",
    "thanks",
    "affirm",
    "deny",
    "cancel",
    "out_of_scope",
)
INTENTS: tuple[str, ...] = SERVICE_INTENTS + DIALOGUE_INTENTS
ENTITY_NAMES: tuple[str, ...] = ("phone", "amount", "ticket_id", "id_number")


@dataclass(frozen=True)
class IntentScore:
    name: str
    confidence: float

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "confidence": round(float(self.confidence), 4)}


@dataclass(frozen=True)
class Entity:
    entity: str
    value: str | int
    start: int
    end: int
    extractor: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "entity": self.entity,
            "value": self.value,
            "start": self.start,
            "end": self.end,
            "extractor": self.extractor,
        }


@dataclass(frozen=True)
class ParseResult:
    text: str
    intent: IntentScore
    intent_ranking: tuple[IntentScore, ...] = ()
    entities: tuple[Entity, ...] = field(default_factory=tuple)
    # Which model ranked the intents: "embedded", or "rasa" (a Rasa server answered).
    # Not part of the Rasa format; `tongxin nlu parse --debug` shows it.
    backend: str = "embedded"

    def to_dict(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "intent": self.intent.to_dict(),
            "intent_ranking": [s.to_dict() for s in self.intent_ranking],
            "entities": [e.to_dict() for e in self.entities],
        }

    def first(self, entity: str) -> Entity | None:
        for e in self.entities:
            if e.entity == entity:
                return e
        return None
