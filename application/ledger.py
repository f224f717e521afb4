"""The single event-sourced application (one store, one global order) and the use-case context."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar, overload
from uuid import UUID

import msgspec
from eventsourcing.application import AggregateNotFoundError, Application, Recording
from eventsourcing.domain import BaseAggregate
from eventsourcing.persistence import IntegrityError

from application.ports import (
    Clock, CompletionConfigs, Completions, ContentServices, ImageGenerator, KeyStore, LLMDefaults, PasswordHasher,
    PrincipalCache, SessionTokens, WebhookServices,
)
from application.views import AccountsView, ApiKeysView, AuditView, ChatsView, LibraryView, ReadModel, VectorsView
from domain.errors import Conflict, Forbidden
from domain.principal import Actor, Principal

log = logging.getLogger("ledgerllm")
A = TypeVar("A")
Agg = TypeVar("Agg", bound=BaseAggregate[UUID])


class IdSource(Protocol):
    """Hands out public integer ids without a shared counter per record (see application.ids)."""

    def next(self, ctx: Context, actor: Actor) -> int: ...


class ReadOnly(Forbidden):
    """This process serves the store as it was at `position` (e.g. a replay) and changes nothing."""

    def __init__(self, position: int) -> None:
        self.position = position
        super().__init__(f"This server is read-only: a replay of the store at position {position}. "
                         "It changes nothing; make changes on the live server.")


class Ledger(Application[UUID]):
    name = "Ledger"
    # Set (to the store's head) by a read-only runtime: every save is refused before it writes.
    read_only: int | None = None

    def save(self, *objs: BaseAggregate[UUID]) -> list[Recording[UUID]]:  # type: ignore[override]
        if self.read_only is not None:
            raise ReadOnly(self.read_only)
        return super().save(*objs)

    @overload
    def find(self, aggregate_id: UUID) -> BaseAggregate[UUID] | None: ...

    @overload
    def find(self, aggregate_id: UUID, kind: type[Agg]) -> Agg | None: ...

    def find(self, aggregate_id: UUID, kind: type[BaseAggregate[UUID]] | None = None) -> BaseAggregate[UUID] | None:
        """The aggregate with this id, or None; with `kind`, one of that class (else TypeError)."""
        try:
            found: BaseAggregate[UUID] = self.repository.get(aggregate_id)
        except AggregateNotFoundError:
            return None
        if kind is not None and not isinstance(found, kind):
            raise TypeError(f"{aggregate_id} is a {type(found).__name__}, not a {kind.__name__}")
        return found

    def load(self, aggregate_id: UUID, kind: type[Agg]) -> Agg:
        """The aggregate with this id, which must exist (AggregateNotFoundError otherwise)."""
        found = self.repository.get(aggregate_id)
        if not isinstance(found, kind):
            raise TypeError(f"{aggregate_id} is a {type(found).__name__}, not a {kind.__name__}")
        return found


class Command(msgspec.Struct, frozen=True, kw_only=True):
    """Every command: who asks (the principal) and which request asked (the correlation id).
    Each event the command's handler records carries both, through `actor()`."""

    principal: Principal
    correlation_id: str

    def actor(self) -> Actor:
        return self.principal.actor(self.correlation_id)


class PublicCommand(msgspec.Struct, frozen=True, kw_only=True):
    """A command from someone who is not signed in (claiming an invite, redeeming a sign-in
    token, an embed widget's visitor): only the request's correlation id. Its handler says
    whom the events it records are acted by."""

    correlation_id: str


@dataclass
class Context:
    """Everything a use case may touch, as ports. Built once by `api/wiring.py`."""

    ledger: Ledger
    clock: Clock
    accounts: AccountsView
    api_keys: ApiKeysView
    library: LibraryView
    vectors: VectorsView
    chats: ChatsView
    audit: AuditView
    hasher: PasswordHasher
    cache: PrincipalCache
    tokens: SessionTokens
    content: ContentServices
    completions: Completions
    completions_config: CompletionConfigs
    llm_defaults: LLMDefaults
    chat_ids: IdSource
    images: ImageGenerator
    keys: KeyStore
    owner_username: str = "admin"
    simple_sso_enabled: bool = False
    webhooks: WebhookServices | None = None  # the wiring sets it; None: webhooks are not available

    @property
    def read_only(self) -> int | None:
        """The position a read-only server shows, or None when changes are allowed."""
        return self.ledger.read_only

    def save(self, *aggregates: BaseAggregate[UUID], project: Sequence[ReadModel] = ()) -> int | None:
        """Append the aggregates' pending events atomically; wait for the named projections.
        Nothing is appended while one of them is stalled: the command could not be read back."""
        for view in project:
            view.check()
        recordings = self.ledger.save(*aggregates)
        position = recordings[-1].notification.id if recordings else None
        for view in project:
            view.ensure(position)
        return position

    def retrying(self, attempt: Callable[[], A], seconds: float = 10.0) -> A:
        """Run a load-decide-save command again when a concurrent save won the race, for up to
        `seconds`, after a random pause that doubles each time (so racing requests spread out
        instead of colliding again in step, also while an embedded store's lock is held)."""
        deadline = time.monotonic() + seconds
        n = 0
        while True:
            try:
                return attempt()
            except IntegrityError:
                n += 1
                pause = random.uniform(0, min(0.25, 0.002 * 2 ** n))
                if time.monotonic() + pause > deadline:
                    break
                log.info("concurrent change; retrying command (attempt %d)", n + 1)
                time.sleep(pause)
        raise Conflict("The record was changed by another request at the same time; try again.")
