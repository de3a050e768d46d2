"""Conversation state, kept as versioned JSON in the store (never pickles)."""

from __future__ import annotations

from dataclasses import dataclass, field
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
    pending: str | None = None  # "cancel" or "reuse:<slot>": a yes/no question is open
    asked_once: list[str] = field(default_factory=list)  # nice-to-have slots not asked again
    reasked: list[str] = field(default_factory=list)  # nice-to-have slots asked a second time
    vague: list[str] = field(default_factory=list)  # slots whose value a better one replaces
    notes: list[str] = field(default_factory=list)  # what the user said that fits no slot


def _form_json(form: FormState) -> dict[str, Any]:
    return dict(vars(form))


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
    paused: list[FormState] = field(default_factory=list)  # forms put aside by a switch
    # Name and phone given earlier in this conversation, offered for reuse.
    profile: dict[str, str] = field(default_factory=dict)
    recent: list[dict[str, str]] = field(default_factory=list)  # idle turns: {"at", "text"}
    menu: bool = False  # the last reply was the numbered list of services

    def to_json(self) -> dict[str, Any]:
        # By hand rather than dataclasses.asdict, which deep-copies recursively
        # and was a fifth of a turn's time; json.dumps copies anyway.
        data: dict[str, Any] = dict(vars(self))
        data["form"] = _form_json(self.form) if self.form is not None else None
        data["paused"] = [_form_json(f) for f in self.paused]
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
            paused = [FormState(**f) for f in data.get("paused") or [] if isinstance(f, dict)]
            return cls(
                form=form,
                choices=[str(c) for c in data.get("choices") or []],
                offer=data.get("offer"),
                offer_text=str(data.get("offer_text") or ""),
                offered_handoff=bool(data.get("offered_handoff", False)),
                confirming_forget=bool(data.get("confirming_forget", False)),
                last_active=data.get("last_active"),
                last_submitted=data.get("last_submitted"),
                paused=paused,
                profile={str(k): str(v) for k, v in (data.get("profile") or {}).items()},
                recent=[dict(r) for r in data.get("recent") or [] if isinstance(r, dict)],
                menu=bool(data.get("menu", False)),
            )
        except (TypeError, ValueError):
            return cls()
