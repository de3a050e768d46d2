"""Flow definitions and department routing, loaded from operator-edited YAML."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

SLOT_TYPES = frozenset({"text", "name", "phone", "amount", "place", "party", "choice"})
CREATES = frozenset({"ticket", "volunteer"})


class FlowDataError(Exception):
    """flows.yml or routing.yml is malformed; the message names file and item."""


@dataclass(frozen=True)
class SlotSpec:
    name: str
    type: str
    prompt: str
    invalid: str | None = None
    optional: bool = False
    from_opening: bool = False
    patterns: tuple[re.Pattern[str], ...] = ()
    min: int | None = None
    max: int | None = None
    min_chars: int = 1
    accepts_location: bool = False
    label: str = ""  # what to call the slot when asking for it by name
    labels: tuple[str, ...] = ()  # "地点在…": words that introduce this slot's value
    vague_values: tuple[str, ...] = ()  # values a more specific answer replaces ("公益市集")
    collect: bool = False  # later values add to this slot ("开了个五金店" + "恒顺五金")


@dataclass(frozen=True)
class FlowSpec:
    name: str
    intent: str
    kind: str
    creates: str
    personal: bool
    faq_first: bool
    label: str
    start_words: tuple[str, ...]
    slots: tuple[SlotSpec, ...]
    summary: str
    faq_prefixes: tuple[str, ...] = ()  # FAQ ids preferred for questions asked mid-form
    request_phrases: tuple[str, ...] = ()  # asking for this service by name: "申请调解"

    def slot(self, name: str) -> SlotSpec | None:
        return next((s for s in self.slots if s.name == name), None)

    @property
    def essentials(self) -> tuple[SlotSpec, ...]:
        return tuple(s for s in self.slots if not s.optional)


@dataclass(frozen=True)
class Route:
    department: str
    contact: str | None


@dataclass(frozen=True)
class FlowBook:
    flows: dict[str, FlowSpec]
    routes: dict[str, Route]
    menu_actions: dict[str, dict[str, str]]
    name_patterns: tuple[re.Pattern[str], ...]
    decline_words: tuple[str, ...]
    correction_words: tuple[str, ...]
    switch_words: tuple[str, ...]
    filler_words: tuple[str, ...]
    not_names: frozenset[str] = frozenset()
    forget_words: tuple[str, ...] = ()
    field_words: dict[str, tuple[str, ...]] = field(default_factory=dict)
    by_intent: dict[str, FlowSpec] = field(default_factory=dict)
    reuse_words: tuple[str, ...] = ()
    resume_words: tuple[str, ...] = ()
    just_asking_words: tuple[str, ...] = ()
    service_menu: tuple[str, ...] = ()
    vague_place_words: tuple[str, ...] = ()
    exact_place_words: tuple[str, ...] = ()
    role_words: tuple[str, ...] = ()
    name_titles: tuple[str, ...] = ()
    phone_labels: tuple[str, ...] = ()
    request_words: tuple[str, ...] = ()
    place_words: tuple[str, ...] = ()

    @classmethod
    def load(cls, flows_path: Path, routing_path: Path) -> FlowBook:
        raw_flows = _read_yaml(flows_path)
        raw_routes = _read_yaml(routing_path)
        problems = validate_flow_data(raw_flows, raw_routes, str(flows_path), str(routing_path))
        if problems:
            raise FlowDataError("\n".join(problems))
        flows = {name: _flow(name, spec) for name, spec in raw_flows["flows"].items()}
        routes = {
            kind: Route(department=str(r["department"]), contact=r.get("contact"))
            for kind, r in raw_routes.items()
        }
        return cls(
            flows=flows,
            routes=routes,
            menu_actions={k: dict(v) for k, v in (raw_flows.get("menu_actions") or {}).items()},
            name_patterns=tuple(re.compile(p) for p in raw_flows.get("name_patterns") or ()),
            decline_words=tuple(raw_flows.get("decline_words") or ()),
            correction_words=tuple(raw_flows.get("correction_words") or ()),
            switch_words=tuple(raw_flows.get("switch_words") or ()),
            filler_words=tuple(sorted(raw_flows.get("filler_words") or (), key=len, reverse=True)),
            not_names=frozenset(raw_flows.get("not_names") or ()),
            forget_words=tuple(raw_flows.get("forget_words") or ()),
            field_words={
                str(k): tuple(v or ()) for k, v in (raw_flows.get("field_words") or {}).items()
            },
            by_intent={f.intent: f for f in flows.values()},
            **{key: _words(raw_flows, key) for key in _WORD_LISTS},
        )


_WORD_LISTS = (
    "reuse_words",
    "resume_words",
    "just_asking_words",
    "service_menu",
    "vague_place_words",
    "exact_place_words",
    "role_words",
    "name_titles",
    "phone_labels",
    "request_words",
    "place_words",
)


def _words(raw: dict[str, Any], key: str) -> tuple[str, ...]:
    # Longest first, so that removing them from a text never leaves a piece of a longer one.
    words = [str(w) for w in raw.get(key) or ()]
    return tuple(words if key == "service_menu" else sorted(words, key=len, reverse=True))


def _read_yaml(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise FlowDataError(f"{path}: cannot read: {exc}") from exc


def _slot(raw: dict[str, Any]) -> SlotSpec:
    return SlotSpec(
        name=raw["name"],
        type=raw["type"],
        prompt=raw["prompt"],
        invalid=raw.get("invalid"),
        optional=bool(raw.get("optional", False)),
        from_opening=bool(raw.get("from_opening", False)),
        patterns=tuple(re.compile(p) for p in raw.get("patterns") or ()),
        min=raw.get("min"),
        max=raw.get("max"),
        min_chars=int(raw.get("min_chars", 1)),
        accepts_location=bool(raw.get("accepts_location", False)),
        label=str(raw.get("label") or raw["name"]),
        labels=tuple(sorted((str(w) for w in raw.get("labels") or ()), key=len, reverse=True)),
        vague_values=tuple(str(w) for w in raw.get("vague_values") or ()),
        collect=bool(raw.get("collect", False)),
    )


def _flow(name: str, raw: dict[str, Any]) -> FlowSpec:
    return FlowSpec(
        name=name,
        intent=raw["intent"],
        kind=raw["kind"],
        creates=raw.get("creates", "ticket"),
        personal=bool(raw.get("personal", True)),
        faq_first=bool(raw.get("faq_first", False)),
        label=str(raw.get("label", name)),
        start_words=tuple(raw.get("start_words") or ()),
        slots=tuple(_slot(s) for s in raw["slots"]),
        summary=raw["summary"],
        faq_prefixes=tuple(raw.get("faq_prefixes") or ()),
        request_phrases=tuple(raw.get("request_phrases") or ()),
    )


def validate_flow_data(
    raw_flows: Any, raw_routes: Any, flows_src: str, routes_src: str
) -> list[str]:
    """Every problem in the two files, each naming file and item."""
    problems: list[str] = []
    if not isinstance(raw_routes, dict):
        problems.append(f"{routes_src}: expected a mapping of ticket kind -> route")
        raw_routes = {}
    for kind, route in raw_routes.items():
        if not isinstance(route, dict) or not route.get("department"):
            problems.append(f"{routes_src}: item {kind!r}: needs a 'department'")
    if not isinstance(raw_flows, dict) or not isinstance(raw_flows.get("flows"), dict):
        return [*problems, f"{flows_src}: expected a top-level 'flows' mapping"]
    for name, spec in raw_flows["flows"].items():
        where = f"{flows_src}: flow {name!r}"
        if not isinstance(spec, dict):
            problems.append(f"{where}: expected a mapping")
            continue
        for key in ("intent", "kind", "slots", "summary"):
            if key not in spec:
                problems.append(f"{where}: missing {key!r}")
        if spec.get("creates", "ticket") not in CREATES:
            problems.append(f"{where}: 'creates' must be one of {sorted(CREATES)}")
        if spec.get("kind") and spec["kind"] not in raw_routes:
            problems.append(f"{where}: kind {spec['kind']!r} has no route in {routes_src}")
        seen: set[str] = set()
        for i, slot in enumerate(spec.get("slots") or []):
            swhere = f"{where} slot #{i + 1}"
            if not isinstance(slot, dict) or not slot.get("name") or not slot.get("prompt"):
                problems.append(f"{swhere}: needs 'name' and 'prompt'")
                continue
            if slot["name"] in seen:
                problems.append(f"{swhere}: slot {slot['name']!r} repeated")
            seen.add(slot["name"])
            if slot.get("type") not in SLOT_TYPES:
                problems.append(f"{swhere}: type must be one of {sorted(SLOT_TYPES)}")
            for pattern in slot.get("patterns") or []:
                try:
                    re.compile(pattern)
                except re.error as exc:
                    problems.append(f"{swhere}: bad pattern {pattern!r}: {exc}")
    for i, pattern in enumerate(raw_flows.get("name_patterns") or []):
        try:
            re.compile(pattern)
        except re.error as exc:
            problems.append(f"{flows_src}: name_patterns #{i + 1}: {exc}")
    for i, target in enumerate(raw_flows.get("service_menu") or []):
        if target != "ticket_status" and target not in raw_flows["flows"]:
            problems.append(f"{flows_src}: service_menu #{i + 1}: unknown flow {target!r}")
    for key in _WORD_LISTS:
        value = raw_flows.get(key)
        if value is not None and not (
            isinstance(value, list) and all(isinstance(w, str) and w for w in value)
        ):
            problems.append(f"{flows_src}: {key}: expected a list of non-empty strings")
    for key, action in (raw_flows.get("menu_actions") or {}).items():
        target = action.get("start") if isinstance(action, dict) else None
        if target is not None and target not in raw_flows["flows"]:
            problems.append(f"{flows_src}: menu_actions {key!r}: unknown flow {target!r}")
    return problems
