"""Settings, read once from the environment into a frozen object."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from bot.cli.common import default_db_path
from flows.paths import data_dir_from_env, operator_nlu_dir
from nlu.settings import NluSettings
from nlu.settings import SettingsError as NluSettingsError


class SettingsError(Exception):
    """An environment variable holds a value that cannot be used."""


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        return float(raw)
    except ValueError as exc:
        raise SettingsError(f"{name} must be a number, got {raw!r}") from exc


def _positive(env: Mapping[str, str], name: str, default: float) -> float:
    value = _float(env, name, default)
    if not 0 < value < float("inf"):
        raise SettingsError(f"{name} must be above 0, got {value}")
    return value


def _url(env: Mapping[str, str], name: str) -> str | None:
    raw = env.get(name, "").strip()
    if not raw:
        return None
    if not raw.startswith(("https://", "http://")):
        raise SettingsError(f"{name} must be an http(s):// URL")
    return raw.rstrip("/")


def _db_from_env(env: Mapping[str, str]) -> Path:
    explicit = env.get("TONGXIN_DB", "").strip()
    return Path(explicit) if explicit else default_db_path()


@dataclass(frozen=True)
class Settings:
    db_path: Path
    data_dir: Path
    nlu: NluSettings = field(default_factory=NluSettings)
    form_idle_minutes: float = 30.0
    wechat_token: str | None = None
    wechat_appid: str | None = None
    wechat_secret: str | None = None
    wechat_aes_key: str | None = None
    wechat_api_url: str | None = None
    # Seconds a WeChat turn may take before the HTTP answer is `success` and the
    # replies go through the customer-service API (WeChat waits 5 s).
    wechat_budget_s: float = 4.0
    # Per-user limits on WeChat and Telegram: messages at once, then per minute;
    # new tickets per hour.
    rate_message_burst: int = 30
    rate_messages_per_minute: float = 60.0
    rate_tickets_per_hour: int = 5
    telegram_token: str | None = None
    telegram_webhook_secret: str | None = None
    telegram_api_url: str | None = None
    staff_chat_id: str | None = None
    staff_user_ids: frozenset[int] = field(default_factory=frozenset)
    # The staff workspace (/staff/): off without a secret key.
    secret_key: str | None = None
    session_hours: float = 12.0
    overdue_hours: float = 72.0
    survey_answer_hours: float = 72.0  # a survey unanswered this long is not asked again
    takeover_idle_minutes: float = 15.0
    # A WeCom group robot's webhook: staff notices are posted there.
    wecom_webhook_url: str | None = None
    # Where staff reach the workspace from outside (https://host): links in notices.
    public_url: str | None = None
    # How long residents' photos are kept with their tickets.
    photo_retention_days: float = 180.0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, *, db: str | None = None) -> Settings:
        env = os.environ if env is None else env

        def opt(name: str) -> str | None:
            value = env.get(name, "").strip()
            return value or None

        staff_ids: set[int] = set()
        for part in (opt("TONGXIN_STAFF_USER_IDS") or "").split(","):
            if part.strip():
                try:
                    staff_ids.add(int(part.strip()))
                except ValueError as exc:
                    raise SettingsError(
                        f"TONGXIN_STAFF_USER_IDS must be comma-separated numbers, got {part!r}"
                    ) from exc
        idle = _float(env, "TONGXIN_FORM_IDLE_MINUTES", 30.0)
        if not 0 < idle < float("inf"):
            raise SettingsError(f"TONGXIN_FORM_IDLE_MINUTES must be above 0, got {idle}")
        workspace = {
            name: _positive(env, f"TONGXIN_{name.upper()}", default)
            for name, default in (
                ("session_hours", 12.0),
                ("overdue_hours", 72.0),
                ("survey_answer_hours", 72.0),
                ("takeover_idle_minutes", 15.0),
                ("photo_retention_days", 180.0),
            )
        }
        budget = _float(env, "TONGXIN_WECHAT_BUDGET_S", 4.0)
        if not 0 < budget <= 4.5:
            raise SettingsError(
                f"TONGXIN_WECHAT_BUDGET_S must be above 0 and at most 4.5, got {budget}"
            )
        rates = {}
        for name, default in (
            ("TONGXIN_RATE_MESSAGE_BURST", 30.0),
            ("TONGXIN_RATE_MESSAGES_PER_MINUTE", 60.0),
            ("TONGXIN_RATE_TICKETS_PER_HOUR", 5.0),
        ):
            rates[name] = _float(env, name, default)
            if not 1 <= rates[name] < float("inf"):
                raise SettingsError(f"{name} must be at least 1, got {rates[name]}")
        try:
            nlu = NluSettings.from_env(env)
        except NluSettingsError as exc:
            raise SettingsError(str(exc)) from exc
        data_dir = data_dir_from_env(env)
        nlu = replace(nlu, operator_data=(operator_nlu_dir(data_dir),))
        return cls(
            db_path=Path(db) if db else _db_from_env(env),
            data_dir=data_dir,
            nlu=nlu,
            form_idle_minutes=idle,
            wechat_token=opt("TONGXIN_WECHAT_TOKEN"),
            wechat_appid=opt("TONGXIN_WECHAT_APPID"),
            wechat_secret=opt("TONGXIN_WECHAT_SECRET"),
            wechat_aes_key=opt("TONGXIN_WECHAT_AES_KEY"),
            wechat_api_url=opt("TONGXIN_WECHAT_API_URL"),
            wechat_budget_s=budget,
            rate_message_burst=int(rates["TONGXIN_RATE_MESSAGE_BURST"]),
            rate_messages_per_minute=rates["TONGXIN_RATE_MESSAGES_PER_MINUTE"],
            rate_tickets_per_hour=int(rates["TONGXIN_RATE_TICKETS_PER_HOUR"]),
            telegram_token=opt("TONGXIN_TELEGRAM_TOKEN"),
            telegram_webhook_secret=opt("TONGXIN_TELEGRAM_WEBHOOK_SECRET"),
            telegram_api_url=opt("TONGXIN_TELEGRAM_API_URL"),
            staff_chat_id=opt("TONGXIN_STAFF_CHAT_ID"),
            staff_user_ids=frozenset(staff_ids),
            secret_key=opt("TONGXIN_SECRET_KEY"),
            wecom_webhook_url=_url(env, "TONGXIN_WECOM_WEBHOOK_URL"),
            public_url=_url(env, "TONGXIN_PUBLIC_URL"),
            **workspace,
        )
