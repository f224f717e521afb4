"""The single event-sourced application (one store, one global order) and the use-case context."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.persistence import IntegrityError

from application.ports import PasswordHasher, PrincipalCache, SessionTokens
from domain.errors import Conflict, Forbidden
from projections.runner import ProjectionRunner

log = logging.getLogger("ledgerllm")
A = TypeVar("A")


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

    def save(self, *objs: Any, **kwargs: Any) -> Any:
        if self.read_only is not None:
            raise ReadOnly(self.read_only)
        return super().save(*objs, **kwargs)

    def find(self, aggregate_id: UUID) -> Any | None:
        try:
            return self.repository.get(aggregate_id)
        except AggregateNotFoundError:
            return None


@dataclass
class Context:
    """Everything a use case may touch. Built once by the app factory or the CLI."""

    ledger: Ledger
    accounts: ProjectionRunner
    api_keys: ProjectionRunner
    hasher: PasswordHasher
    cache: PrincipalCache
    tokens: SessionTokens
    owner_username: str = "admin"
    simple_sso_enabled: bool = False
    # workspaces and documents (issue 4): set by the wiring
    library: ProjectionRunner | None = None
    vectors: ProjectionRunner | None = None
    content: Any = None  # application.ports.ContentServices
    # chat (issue 5): set by the wiring
    chats: ProjectionRunner | None = None
    completions: Any = None  # infrastructure.completions.LiteLLMCompletions
    completions_config: Any = None  # (model, api_base, api_key, timeout) -> its LLMConfig
    llm_defaults: Any = None  # application.llm.LLMDefaults
    chat_ids: Any = None  # application.llm.IdBlocks
    images: Any = None  # application.images.ImageGenerator
    # audit (issue 6): set by the wiring
    audit: ProjectionRunner | None = None

    @property
    def read_only(self) -> int | None:
        """The position a read-only server shows, or None when changes are allowed."""
        return self.ledger.read_only

    @property
    def runners(self) -> list[ProjectionRunner]:
        runners = (self.accounts, self.api_keys, self.library, self.vectors, self.chats, self.audit)
        return [r for r in runners if r is not None]

    def save(self, *aggregates: Any, project: Sequence[ProjectionRunner] = ()) -> int | None:
        """Append the aggregates' pending events atomically; wait for the named projections."""
        recordings = self.ledger.save(*aggregates)
        position = recordings[-1].notification.id if recordings else None
        for runner in project:
            runner.ensure(position)
        return position

    def retrying(self, attempt: Callable[[], A], tries: int = 5) -> A:
        """Run a load-decide-save command again when a concurrent save won the race."""
        for n in range(tries):
            try:
                return attempt()
            except IntegrityError:
                log.info("concurrent change; retrying command (attempt %d)", n + 2)
        raise Conflict("The record was changed by another request at the same time; try again.")
