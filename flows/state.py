"""Conversation state, kept as versioned JSON in the store (never pickles)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

STATE_VERSION = 1


@dataclass
class FormState:
    flow: str
    form_id: str  # also the ticket's dedupe key: a repeated "确认" never files twice
    slots: dict[str, Any] = field(default_factory=dict)
    declined: list[str] = field(default_factory=list)
    asking: str | None = None
    retries: int = 0
    confirming: bool = False
    offered_handoff: bool = False
    attachments: list[str] = field(default_factory=list)


@dataclass
class ConversationState:
    form: FormState | None = None
    choices: list[str] = field(default_factory=list)  # FAQ ids offered by number
    offer: str | None = None  # flow offered after an FAQ answer ("回复申请")
    offer_text: str = ""  # the question that led to the offer: it prefills the form
    offered_handoff: bool = False
    confirming_forget: bool = False
    last_active: str | None = None
    last_submitted: dict[str, str] | None = None  # {"form_id", "ref", "flow"}

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["v"] = STATE_VERSION
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> ConversationState:
        """Rebuild a state; anything unreadable (old version, hand-edited row)
        starts a fresh conversation rather than failing the user's turn."""
        if not data or data.get("v") != STATE_VERSION:
            return cls()
        try:
            form_data = data.get("form")
            form = FormState(**form_data) if form_data else None
            return cls(
                form=form,
                choices=[str(c) for c in data.get("choices") or []],
                offer=data.get("offer"),
                offer_text=str(data.get("offer_text") or ""),
                offered_handoff=bool(data.get("offered_handoff", False)),
                confirming_forget=bool(data.get("confirming_forget", False)),
                last_active=data.get("last_active"),
                last_submitted=data.get("last_submitted"),
            )
        except (TypeError, ValueError):
            return cls()
