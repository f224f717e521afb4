"""Chat exchanges and history resets.

Every exchange is its own aggregate, recorded once the reply is complete (or has failed, or
the client went away): it belongs to the acting user and key, so a chat can never be stored
without its user. A reset is an event scoped exactly to (workspace, user, thread, session),
where `None` means "the default thread" / "no session", never "any"."""

from __future__ import annotations

from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid4, uuid5

from domain.audited import Audited
from domain.principal import Actor

STATUSES = ("ok", "refused", "partial", "failed", "reset")


def chat_uuid(chat_id: int) -> UUID:
    return uuid5(NAMESPACE_URL, f"ledgerllm:/chats/{chat_id}")


class Chat(Audited):
    class Recorded(Audited.Created):
        # Prompt, reply, sources (attachment and document text) and attachment names are the
        # user's content: stored under their data key (domain/sealed.py).
        sealed_fields = ("prompt", "response", "sources", "attachments")
        sealed_owner = "user_id"
        chat_id: int
        workspace_id: int
        user_id: int
        thread_id: int | None
        session_id: str | None
        embed_id: int | None
        prompt: str
        response: str
        mode: str
        sources: list[dict[str, Any]]
        attachments: list[dict[str, Any]]
        model: str | None
        prompt_tokens: int
        completion_tokens: int
        latency_ms: float
        include: bool
        status: str
        error: str | None

        def apply(self, chat: Chat) -> None:
            chat.chat_id, chat.user_id = self.chat_id, self.user_id

    @classmethod
    def record(cls, actor: Actor, chat_id: int, **fields: Any) -> Chat:
        return cls._create(cls.Recorded, id=chat_uuid(chat_id), **actor.stamp(), chat_id=chat_id, **fields)


class HistoryReset(Audited):
    class Recorded(Audited.Created):
        workspace_id: int
        user_id: int
        thread_id: int | None
        session_id: str | None
        embed_id: int | None

        def apply(self, reset: HistoryReset) -> None:
            pass

    @classmethod
    def record(cls, actor: Actor, workspace_id: int, user_id: int, thread_id: int | None, session_id: str | None,
               embed_id: int | None = None) -> HistoryReset:
        return cls._create(cls.Recorded, id=uuid4(), **actor.stamp(), workspace_id=workspace_id, user_id=user_id,
                           thread_id=thread_id, session_id=session_id, embed_id=embed_id)
