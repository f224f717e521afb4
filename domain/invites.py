"""The Invite aggregate: a single-use code that lets someone create a `default` user."""

from __future__ import annotations

from uuid import NAMESPACE_URL, UUID, uuid5

from domain.audited import Audited
from domain.errors import Conflict, InvalidInput
from domain.principal import Actor

MAX_WORKSPACES = 1000


def invite_uuid(invite_id: int) -> UUID:
    return uuid5(NAMESPACE_URL, f"ledgerllm:/invites/{invite_id}")


class Invite(Audited):
    class Created(Audited.Created):
        invite_id: int
        code_hash: str
        display_prefix: str
        workspace_ids: tuple[int, ...]

        def apply(self, invite: Invite) -> None:
            invite.invite_id = self.invite_id
            invite.workspace_ids = tuple(self.workspace_ids)
            invite.status = "pending"

    class Claimed(Audited.Event):
        user_id: int

        def apply(self, invite: Invite) -> None:
            invite.status = "claimed"

    class Disabled(Audited.Event):
        def apply(self, invite: Invite) -> None:
            invite.status = "disabled"


    @classmethod
    def create(
        cls, actor: Actor, invite_id: int, code_hash: str, display_prefix: str, workspace_ids: list[int]
    ) -> Invite:
        if len(workspace_ids) > MAX_WORKSPACES or any(w < 1 for w in workspace_ids):
            raise InvalidInput("workspaceIds must be a list of positive workspace ids.")
        return cls._create(
            cls.Created,
            id=invite_uuid(invite_id),
            **actor.stamp(),
            invite_id=invite_id,
            code_hash=code_hash,
            display_prefix=display_prefix,
            workspace_ids=tuple(dict.fromkeys(workspace_ids)),
        )

    def claim(self, actor: Actor, user_id: int) -> None:
        if self.status != "pending":
            raise Conflict("This invite is not valid.")
        self._record(self.Claimed, actor, user_id=user_id)

    def disable(self, actor: Actor) -> bool:
        if self.status != "pending":
            return False
        self._record(self.Disabled, actor)
        return True
