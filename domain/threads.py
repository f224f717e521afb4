"""Threads: named conversations inside a workspace, each owned by one user."""

from __future__ import annotations

import re
from uuid import NAMESPACE_URL, UUID, uuid5

from domain.audited import Audited
from domain.errors import InvalidInput
from domain.principal import Actor

NAME_MAX = 255


def thread_uuid(thread_id: int) -> UUID:
    return uuid5(NAMESPACE_URL, f"ledgerllm:/threads/{thread_id}")


def thread_slug_uuid(slug: str, workspace_id: int | None = None) -> UUID:
    """The claim of a slug in one workspace (claims made before were global: no workspace)."""
    if workspace_id is None:
        return uuid5(NAMESPACE_URL, f"ledgerllm:/thread-slugs/{slug}")
    return uuid5(NAMESPACE_URL, f"ledgerllm:/workspaces/{workspace_id}/thread-slugs/{slug}")


def check_thread_slug(slug: str) -> str:
    """Slugified, keeping case as upstream does (its `lowercase` option is ignored)."""
    cleaned = re.sub(r"[^A-Za-z0-9_-]+", "-", slug).strip("-")[:100]
    if not cleaned:
        raise InvalidInput("Thread slug must contain letters or digits.")
    return cleaned


def check_thread_name(name: object) -> str:
    if not isinstance(name, str) or not name.strip():
        raise InvalidInput("Thread name cannot be empty.")
    if len(name) > NAME_MAX:
        raise InvalidInput(f"Thread name must be at most {NAME_MAX} characters.")
    return name.strip()


class Thread(Audited):
    class Created(Audited.Created):
        thread_id: int
        workspace_id: int
        user_id: int
        name: str
        slug: str

        def apply(self, thread: Thread) -> None:
            thread.thread_id, thread.workspace_id, thread.user_id = self.thread_id, self.workspace_id, self.user_id
            thread.name, thread.slug, thread.deleted = self.name, self.slug, False

    class Renamed(Audited.Event):
        name: str

        def apply(self, thread: Thread) -> None:
            thread.name = self.name

    class Deleted(Audited.Event):
        def apply(self, thread: Thread) -> None:
            thread.deleted = True

    @classmethod
    def create(cls, actor: Actor, thread_id: int, workspace_id: int, user_id: int, name: str, slug: str) -> Thread:
        return cls._create(cls.Created, id=thread_uuid(thread_id), **actor.stamp(), thread_id=thread_id,
                           workspace_id=workspace_id, user_id=user_id, name=check_thread_name(name),
                           slug=check_thread_slug(slug))

    def rename(self, actor: Actor, name: str) -> None:
        name = check_thread_name(name)
        if name != self.name:
            self._record(self.Renamed, actor, name=name)

    def delete(self, actor: Actor) -> None:
        if not self.deleted:
            self._record(self.Deleted, actor)


class ThreadSlug(Audited):
    """Claims a thread slug in one workspace: a second claim of the same slug there fails on
    save, so two racing creates cannot share one. (Upstream's are unique across workspaces,
    which lets a 409 tell one user that a slug exists in a workspace they cannot see.)"""

    class Claimed(Audited.Created):
        slug: str
        thread_id: int
        workspace_id: int | None = None  # None: a claim made when slugs were global

        def apply(self, claim: ThreadSlug) -> None:
            claim.thread_id = self.thread_id

    @classmethod
    def claim(cls, actor: Actor, slug: str, thread_id: int, workspace_id: int) -> ThreadSlug:
        return cls._create(cls.Claimed, id=thread_slug_uuid(slug, workspace_id), **actor.stamp(), slug=slug,
                           thread_id=thread_id, workspace_id=workspace_id)
