"""Signing in and out: signed, expiring, HttpOnly SameSite session cookies
backed by a session row, CSRF tokens, and login throttling per address and
per account (counted in the store, so every server process sees them)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import timedelta

from starlette.requests import Request
from starlette.responses import Response

from bot.workspace.accounts import StaffUser, verify
from flows.workspace_store import WorkspaceStore

COOKIE = "tongxin_staff"
CSRF_HEADER = "x-csrf-token"
# Failures within the window, per account and per address, before 429.
ACCOUNT_LIMIT = 5
ADDRESS_LIMIT = 30
WINDOW_S = 15 * 60


class ThrottledError(Exception):
    def __init__(self, retry_after_s: int) -> None:
        super().__init__("too many failed sign-ins; try again later")
        self.retry_after_s = retry_after_s


@dataclass(frozen=True)
class SessionKeeper:
    ws: WorkspaceStore
    secret_key: str
    ttl: timedelta

    # -- cookie ---------------------------------------------------------

    def _sign(self, token: str) -> str:
        mac = hmac.new(self.secret_key.encode(), token.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac).decode().rstrip("=")

    def _token(self, request: Request) -> str | None:
        raw = request.cookies.get(COOKIE, "")
        token, _, signature = raw.partition(".")
        if not token or not hmac.compare_digest(signature, self._sign(token)):
            return None
        return token

    def user(self, request: Request) -> StaffUser | None:
        token = self._token(request)
        if token is None:
            return None
        found = self.ws.session(token)
        if found is None:
            return None
        session, account = found
        return StaffUser(account.username, account.role, account.department, session.csrf_token)

    def csrf_ok(self, request: Request, user: StaffUser, form_token: str | None = None) -> bool:
        sent = request.headers.get(CSRF_HEADER) or form_token or ""
        return hmac.compare_digest(sent, user.csrf_token)

    # -- sign in / out ---------------------------------------------------

    def login(self, username: str, password: str, address: str) -> str | None:
        """A new session token for a right password; None for a wrong one.
        Raises `ThrottledError` once an address or a name failed too often."""
        keys = (f"addr:{address}", f"user:{username}")
        if self.ws.failures(keys[0]) >= ADDRESS_LIMIT or self.ws.failures(keys[1]) >= ACCOUNT_LIMIT:
            raise ThrottledError(WINDOW_S)
        account = verify(self.ws, username, password) if username and password else None
        if account is None:
            for key in keys:
                self.ws.add_failure(key, WINDOW_S)
            return None
        self.ws.clear_failures(keys[1])
        token = secrets.token_urlsafe(32)
        self.ws.add_session(token, account.username, secrets.token_urlsafe(32), self.ttl)
        return token

    def set_cookie(self, response: Response, token: str, *, secure: bool) -> None:
        response.set_cookie(
            COOKIE,
            f"{token}.{self._sign(token)}",
            max_age=int(self.ttl.total_seconds()),
            path="/staff",
            httponly=True,
            samesite="lax",
            secure=secure,
        )

    def logout(self, request: Request, response: Response) -> None:
        token = self._token(request)
        if token is not None:
            self.ws.end_session(token)
        response.delete_cookie(COOKIE, path="/staff", httponly=True, samesite="lax")
