"""Embed widgets: a public chat window onto one workspace, with its own limits."""

from __future__ import annotations

from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

from domain.audited import Audited
from domain.errors import InvalidInput
from domain.principal import Actor

EMBED_CHAT_MODES = ("chat", "query")
BOOL_FIELDS = ("allow_model_override", "allow_temperature_override", "allow_prompt_override", "enabled")
LIMIT_FIELDS = ("max_chats_per_day", "max_chats_per_session", "message_limit")


def embed_uuid(public_uuid: str) -> UUID:
    return uuid5(NAMESPACE_URL, f"ledgerllm:/embeds/{public_uuid}")


def is_public_id(value: Any) -> bool:
    """A JSON integer that can name a row: not a boolean (in Python `True` is the integer 1),
    from 1 to 2**63 - 1 (a larger one cannot even be bound to an SQL query)."""
    return isinstance(value, int) and not isinstance(value, bool) and 1 <= value < 2**63


def check_allowlist(value: Any) -> list[str] | None:
    """A list of origins, or a comma-separated string (upstream's form); None = any origin.
    Upstream stores null when the type is wrong, opening the embed to every origin; here a
    wrong type is refused."""
    if value is None or value == "":
        return None
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
        raise InvalidInput("allowlist_domains must be a comma-separated string or a list of origins")
    cleaned = [i.strip().rstrip("/") for i in items if i.strip()]
    if any(len(i) > 255 or " " in i for i in cleaned) or len(cleaned) > 100:
        raise InvalidInput("allowlist_domains holds an invalid origin")
    return cleaned or None


def normalize_embed_settings(raw: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in raw.items():
        if key == "chat_mode":
            if value not in EMBED_CHAT_MODES:
                raise InvalidInput("chat_mode must be 'chat' or 'query'")
            out[key] = value
        elif key in BOOL_FIELDS:
            out[key] = value is True  # strict booleans, as upstream
        elif key in LIMIT_FIELDS:
            if value is None:
                out[key] = None
            elif isinstance(value, bool) or not isinstance(value, int) or value < 1 or value > 1_000_000:
                raise InvalidInput(f"{key} must be a positive integer or null")
            else:
                out[key] = value
        elif key == "allowlist_domains":
            out[key] = check_allowlist(value)
    return out


class Embed(Audited):
    class Created(Audited.Created):
        embed_id: int
        uuid: str
        workspace_id: int
        settings: dict[str, Any]

        def apply(self, embed: Embed) -> None:
            embed.embed_id, embed.uuid, embed.workspace_id = self.embed_id, self.uuid, self.workspace_id
            embed.settings = dict(self.settings)
            embed.deleted = False

    class Updated(Audited.Event):
        changes: dict[str, Any]
        workspace_id: int | None = None

        def apply(self, embed: Embed) -> None:
            embed.settings.update(self.changes)
            if self.workspace_id is not None:
                embed.workspace_id = self.workspace_id

    class Deleted(Audited.Event):
        def apply(self, embed: Embed) -> None:
            embed.deleted = True

    @classmethod
    def create(cls, actor: Actor, embed_id: int, public_uuid: str, workspace_id: int, raw: dict[str, Any]) -> Embed:
        settings = {"enabled": True, "chat_mode": "query", "allowlist_domains": None,
                    "allow_model_override": False, "allow_temperature_override": False,
                    "allow_prompt_override": False, "max_chats_per_day": None, "max_chats_per_session": None,
                    "message_limit": 20}
        settings.update(normalize_embed_settings(raw))
        return cls._create(cls.Created, id=embed_uuid(public_uuid), **actor.stamp(), embed_id=embed_id,
                           uuid=public_uuid, workspace_id=workspace_id, settings=settings)

    def update(self, actor: Actor, raw: dict[str, Any], workspace_id: int | None = None) -> bool:
        changes = {k: v for k, v in normalize_embed_settings(raw).items() if self.settings.get(k) != v}
        if workspace_id == self.workspace_id:
            workspace_id = None
        if not changes and workspace_id is None:
            return False
        self._record(self.Updated, actor, changes=changes, workspace_id=workspace_id)
        return True

    def delete(self, actor: Actor) -> bool:
        if self.deleted:
            return False
        self._record(self.Deleted, actor)
        return True


def embed_slot_uuid(embed_id: int, window: str, slot: int) -> UUID:
    return uuid5(NAMESPACE_URL, f"ledgerllm:/embeds/{embed_id}/slots/{window}/{slot}")


class EmbedChatSlot(Audited):
    """One of an embed's limited chats (slot `slot` of a session's or a day's allowance),
    reserved before the chat runs. A slot is an aggregate of its own: two requests racing for
    it cannot both save it, so a limit holds across threads and processes."""

    class Reserved(Audited.Created):
        embed_id: int
        window: str  # "session:<id>" or "day:<YYYY-MM-DD>"
        slot: int

        def apply(self, reservation: EmbedChatSlot) -> None:
            reservation.embed_id, reservation.window, reservation.slot = self.embed_id, self.window, self.slot

    @classmethod
    def reserve(cls, actor: Actor, embed_id: int, window: str, slot: int) -> EmbedChatSlot:
        return cls._create(cls.Reserved, id=embed_slot_uuid(embed_id, window, slot), **actor.stamp(),
                           embed_id=embed_id, window=window, slot=slot)
