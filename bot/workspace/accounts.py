"""Staff accounts: who may sign in, with which role and department, and the
password check (argon2id, salted and slow, from argon2-cffi)."""

from __future__ import annotations

import functools
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from flows.definitions import FlowBook
from flows.workspace_store import ROLES, AccountError, StaffAccount, WorkspaceStore

MIN_PASSWORD_CHARS = 8
MAX_PASSWORD_CHARS = 256
MAX_USERNAME_CHARS = 64

# One hasher: its parameters are argon2-cffi's defaults (RFC 9106 low-memory profile).
_HASHER = PasswordHasher()


@functools.cache
def _dummy_hash() -> str:
    """Verified against when the account does not exist, so that a wrong
    name takes as long as a wrong password (made on first use, not at import)."""
    return _HASHER.hash("not a password of anyone")


@dataclass(frozen=True)
class StaffUser:
    """A signed-in staff member as the workspace sees them."""

    username: str
    role: str
    department: str | None
    csrf_token: str

    @property
    def can_change(self) -> bool:
        return self.role != "viewer"

    @property
    def departments(self) -> frozenset[str] | None:
        """The departments whose tickets they see; None: all of them."""
        if self.role == "admin" or self.department is None:
            return None
        return frozenset({self.department})

    def sees(self, department: str) -> bool:
        scope = self.departments
        return scope is None or department in scope


def check_username(name: str) -> str:
    name = name.strip()
    if not name or len(name) > MAX_USERNAME_CHARS:
        raise AccountError(f"a staff name has 1 to {MAX_USERNAME_CHARS} characters")
    if any(ch.isspace() or unicodedata.category(ch)[0] == "C" for ch in name):
        raise AccountError("a staff name has no spaces or control characters")
    return name


def check_password(password: str) -> str:
    if len(password) < MIN_PASSWORD_CHARS:
        raise AccountError(f"the password needs at least {MIN_PASSWORD_CHARS} characters")
    if len(password) > MAX_PASSWORD_CHARS:
        raise AccountError(f"the password has at most {MAX_PASSWORD_CHARS} characters")
    return password


def resolve_department(department: str | None, routing: dict[str, str]) -> str | None:
    """A department as named in data/routing.yml; a ticket kind names its desk."""
    if department is None:
        return None
    department = department.strip()
    known = set(routing.values())
    if department in known:
        return department
    if department in routing:
        return routing[department]
    raise AccountError(
        f"unknown department {department!r}; one of: {', '.join(sorted(known))} "
        "(or a ticket kind from data/routing.yml)"
    )


def add_account(
    ws: WorkspaceStore,
    username: str,
    password: str,
    role: str,
    department: str | None,
    routing: dict[str, str],
) -> StaffAccount:
    if role not in ROLES:
        raise AccountError(f"unknown role {role!r}; one of: {', '.join(ROLES)}")
    department = resolve_department(department, routing)
    if role == "staff" and department is None:
        raise AccountError("a staff account needs --department (its desk in data/routing.yml)")
    return ws.add_account(
        check_username(username), _HASHER.hash(check_password(password)), role, department
    )


def set_password(ws: WorkspaceStore, username: str, password: str) -> None:
    ws.set_password_hash(username, _HASHER.hash(check_password(password)))


def verify(ws: WorkspaceStore, username: str, password: str) -> StaffAccount | None:
    """The enabled account whose password this is; None otherwise."""
    account = ws.get_account(username)
    stored = account.password_hash if account is not None else _dummy_hash()
    try:
        _HASHER.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return None
    if account is None or account.disabled:
        return None
    if _HASHER.check_needs_rehash(stored):
        ws.set_password_hash(account.username, _HASHER.hash(password))
    return account


def load_routing(data_dir: Path) -> dict[str, str]:
    """kind -> department, from the operator's data/routing.yml."""
    book = FlowBook.load(data_dir / "flows.yml", data_dir / "routing.yml")
    return {kind: route.department for kind, route in book.routes.items()}
