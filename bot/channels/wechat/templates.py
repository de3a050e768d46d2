"""Template messages: how a ticket update reaches a resident after WeChat's
48-hour customer-service window has closed (errcode 45015).

Which template and which of its fields carry what is operator data
(data/wechat_templates.yml, checked by `tongxin check-data`): one entry per
update kind (the ticket's status when the update goes out), `default` for the
rest. A template whose id is still null is "not configured": the update then
fails with a reason staff can read on the outbox row.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, Protocol

import yaml

from flows.replies import Replies
from flows.staff import kind_label, status_label
from flows.store import (
    LOCAL_TZ,
    TICKET_STATUSES,
    OutboxItem,
    Store,
    TicketNotFoundError,
    parse_iso,
    utcnow,
)

TEMPLATES_FILE = "wechat_templates.yml"
DEFAULT_UPDATE = "default"
# What 同心 can put into a template field.
VALUE_NAMES = ("ticket_id", "kind", "status", "note", "department", "time")
# WeChat's limits per field type (the letters before the field's number).
FIELD_LIMITS = {"thing": 20, "character_string": 32, "phrase": 5, "short_thing": 5, "number": 32}
_FIELD_NAME = re.compile(r"^([a-z_]+?)(\d+)$")
# Customer-service messages are allowed this long after the user's last message.
SERVICE_WINDOW = timedelta(hours=48)


class TemplateDataError(ValueError):
    """data/wechat_templates.yml cannot be used."""


@dataclass(frozen=True)
class TicketTemplate:
    update: str
    template_id: str | None
    fields: Mapping[str, str] = field(default_factory=dict)  # WeChat field -> value name
    url: str | None = None


@dataclass(frozen=True)
class TemplateBook:
    templates: Mapping[str, TicketTemplate]
    path: str = TEMPLATES_FILE

    def for_status(self, status: str) -> TicketTemplate | None:
        """The template for an update of a ticket now in `status`."""
        return self.templates.get(status) or self.templates.get(DEFAULT_UPDATE)

    def unconfigured(self) -> list[str]:
        """Update kinds whose template id is still to be filled in."""
        missing = [name for name, t in self.templates.items() if not t.template_id]
        if DEFAULT_UPDATE not in self.templates:
            missing.insert(0, DEFAULT_UPDATE)
        return missing

    @classmethod
    def load(cls, path: Path) -> TemplateBook:
        templates, problems = _read(path)
        if problems:
            raise TemplateDataError("; ".join(problems))
        return cls(templates, str(path))

    @classmethod
    def empty(cls) -> TemplateBook:
        return cls({})


def template_problems(path: Path) -> list[str]:
    """Everything wrong with the file (for check-data); [] when usable."""
    return _read(path)[1]


def _read(path: Path) -> tuple[dict[str, TicketTemplate], list[str]]:
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        return {}, [f"{path}: cannot read: {exc}"]
    if not isinstance(raw, dict) or not isinstance(raw.get("templates"), dict):
        return {}, [f"{path}: needs a `templates:` mapping"]
    problems: list[str] = []
    templates: dict[str, TicketTemplate] = {}
    allowed = (DEFAULT_UPDATE, *TICKET_STATUSES)
    for name, entry in raw["templates"].items():
        where = f"{path}: templates.{name}"
        if name not in allowed:
            problems.append(f"{where}: unknown update kind; one of: {', '.join(allowed)}")
            continue
        if not isinstance(entry, dict):
            problems.append(f"{where}: needs template_id and fields")
            continue
        unknown = set(entry) - {"template_id", "fields", "url"}
        if unknown:
            problems.append(f"{where}: unknown keys {', '.join(sorted(map(str, unknown)))}")
        template_id = entry.get("template_id")
        usable = isinstance(template_id, str) and template_id.strip()
        if template_id is not None and not usable:
            problems.append(f"{where}: template_id must be the template's id text, or null")
            template_id = None
        fields = entry.get("fields")
        if not isinstance(fields, dict) or not fields:
            problems.append(f"{where}: fields must map the template's field names to values")
            continue
        for wechat_field, value in fields.items():
            if not isinstance(wechat_field, str) or not _FIELD_NAME.match(wechat_field):
                problems.append(
                    f"{where}: field {wechat_field!r} is not a WeChat field name like thing2"
                )
            if value not in VALUE_NAMES:
                problems.append(
                    f"{where}: field {wechat_field}: {value!r} is not one of "
                    f"{', '.join(VALUE_NAMES)}"
                )
        url = entry.get("url")
        if url is not None and not (isinstance(url, str) and url.startswith("https://")):
            problems.append(f"{where}: url must start with https://")
        templates[name] = TicketTemplate(
            str(name),
            template_id.strip() if isinstance(template_id, str) else None,
            {str(k): str(v) for k, v in fields.items()},
            url if isinstance(url, str) else None,
        )
    if DEFAULT_UPDATE not in templates and not problems:
        problems.append(f"{path}: templates.default is missing (used for every other update)")
    return templates, problems


def _fit(wechat_field: str, text: str) -> str:
    match = _FIELD_NAME.match(wechat_field)
    limit = FIELD_LIMITS.get(match.group(1)) if match else None
    text = " ".join(text.split())
    if limit is None or len(text) <= limit:
        return text
    return text[: limit - 1] + "…"


def template_data(template: TicketTemplate, values: Mapping[str, str]) -> dict[str, Any]:
    """The `data` object of message/template/send."""
    return {
        wechat_field: {"value": _fit(wechat_field, values.get(name, "") or "-")}
        for wechat_field, name in template.fields.items()
    }


class TemplateApi(Protocol):
    def send_template(
        self, openid: str, template_id: str, data: dict[str, Any], url: str | None = None
    ) -> None: ...


class TemplateNotConfiguredError(Exception):
    """No template id for this update: the reason staff read on the outbox row."""


class TicketTemplates:
    """Sends an outbox row about a ticket as a template message. Blocking."""

    def __init__(self, store: Store, replies: Replies, book: TemplateBook) -> None:
        self.store = store
        self.replies = replies
        self.book = book

    def window_closed(self, item: OutboxItem) -> bool:
        """True when the user's last message is known to be older than 48 hours."""
        last = self.store.last_message_at(item.channel, item.user_id, direction="in")
        return last is not None and utcnow() - parse_iso(last) > SERVICE_WINDOW

    def send(self, api: TemplateApi, item: OutboxItem) -> str:
        """Send `item` as a template message; returns the template id used.
        Raises TemplateNotConfiguredError, or the API's errors."""
        if item.ticket_id is None:
            raise TemplateNotConfiguredError("not about a ticket: no template applies")
        try:
            ticket = self.store.get_ticket(item.ticket_id)
        except TicketNotFoundError as exc:
            raise TemplateNotConfiguredError(f"ticket {item.ticket_id} is gone") from exc
        template = self.book.for_status(ticket.status)
        if template is None or not template.template_id:
            update = template.update if template is not None else DEFAULT_UPDATE
            raise TemplateNotConfiguredError(
                f"no template message configured for update {update!r} "
                f"(template_id in data/{TEMPLATES_FILE})"
            )
        values = {
            "ticket_id": ticket.id,
            "kind": kind_label(self.replies, ticket.kind),
            "status": status_label(self.replies, ticket.status),
            "note": item.text,
            "department": ticket.department,
            "time": parse_iso(item.created_at).astimezone(LOCAL_TZ).strftime("%Y年%m月%d日 %H:%M"),
        }
        api.send_template(
            item.user_id, template.template_id, template_data(template, values), template.url
        )
        return template.template_id


def load_templates(data_dir: Path) -> TemplateBook:
    """The operator's templates; a missing file means none configured."""
    path = data_dir / TEMPLATES_FILE
    return TemplateBook.load(path) if path.exists() else TemplateBook.empty()
