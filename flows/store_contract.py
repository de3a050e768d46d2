"""The store contract: what the rest of tongxin may ask of a store, in the
areas the backends must agree on. `flows.store.Store` implements it once, over
SQLite or PostgreSQL (`flows.store_backend`); tests/flows/test_store.py runs
it on both. Staff accounts, sessions and the queue's queries are
`flows.workspace_store.WorkspaceStore`, portable SQL over the same store.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from flows.store import OutboxItem, Stats, Store, Ticket, TicketEvent, Volunteer


class Transactions(Protocol):
    @property
    def kind(self) -> str: ...

    def transaction(self, *, scope: str | None = None) -> AbstractContextManager[None]: ...

    def schema_version(self) -> int: ...

    def migrate(self) -> list[int]: ...

    def probe_write(self) -> None: ...

    def close(self) -> None: ...


class TicketsAndEvents(Protocol):
    def create_ticket(
        self,
        *,
        kind: str,
        department: str,
        channel: str,
        user_id: str,
        phone: str | None,
        fields: dict[str, Any],
        dedupe_key: str | None = None,
        actor: str = "user",
    ) -> tuple[Ticket, bool]: ...

    def get_ticket(self, ticket_id: str) -> Ticket: ...

    def list_tickets(
        self,
        *,
        status: str | None = None,
        kind: str | None = None,
        channel: str | None = None,
        user_id: str | None = None,
    ) -> list[Ticket]: ...

    def change_ticket(
        self,
        ticket_id: str,
        *,
        actor: str,
        status: str | None = None,
        assignee: str | None = None,
        note: str | None = None,
        notify_text: str | None = None,
    ) -> Ticket: ...

    def ticket_events(self, ticket_id: str) -> list[TicketEvent]: ...

    def events_after(
        self, event_id: int, *, action: str | None = None, limit: int = 100
    ) -> list[TicketEvent]: ...

    def stats(self) -> Stats: ...


class Conversations(Protocol):
    def load_conversation(self, channel: str, user_id: str) -> dict[str, Any] | None: ...

    def save_conversation(
        self, channel: str, user_id: str, state: dict[str, Any], state_version: int
    ) -> None: ...

    def log_message(
        self, channel: str, user_id: str, direction: str, text: str, intent: str | None = None
    ) -> None: ...

    def add_volunteer(
        self,
        *,
        name: str | None,
        phone: str | None,
        team: str | None,
        skill: str | None,
        availability: str | None,
        channel: str,
        user_id: str,
        dedupe_key: str | None = None,
    ) -> tuple[Volunteer, bool]: ...


class Outbox(Protocol):
    def enqueue(
        self,
        channel: str,
        user_id: str,
        text: str,
        *,
        ticket_id: str | None = None,
        chat_id: str | None = None,
    ) -> int: ...

    def due_outbox(self, channel: str, *, limit: int = 50) -> list[OutboxItem]: ...

    def take_outbox_for_user(self, channel: str, user_id: str) -> list[OutboxItem]: ...

    def mark_outbox_sent(self, item_id: int) -> None: ...

    def mark_outbox_failed(self, item_id: int, error: str, *, retry_in_s: float | None) -> None: ...


class ProcessedMessagesAndKeyValue(Protocol):
    def processed_reply(self, key: str) -> str | None: ...

    def record_processed(self, key: str, reply: str, *, channel: str, user_id: str) -> None: ...

    def kv_get(self, key: str) -> str | None: ...

    def kv_set(self, key: str, value: str, *, ttl_s: float | None = None) -> None: ...

    def kv_delete(self, key: str) -> None: ...


class Privacy(Protocol):
    def user_data_counts(self, user_id: str, *, channel: str | None = None) -> dict[str, int]: ...

    def forget_user(self, user_id: str, *, channel: str | None = None) -> dict[str, int]: ...


class StoreContract(
    Transactions,
    TicketsAndEvents,
    Conversations,
    Outbox,
    ProcessedMessagesAndKeyValue,
    Privacy,
    Protocol,
):
    """Everything above: what both backends provide."""


def _conforms(store: Store) -> StoreContract:
    return store  # the type checker proves Store keeps the contract
