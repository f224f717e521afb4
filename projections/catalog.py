"""Every read model by name, in the order commands list them (status, rebuild --all, verify)."""

from __future__ import annotations

from projections.accounts import AccountsProjection
from projections.api_keys import ApiKeysProjection
from projections.audit_log import AuditLogProjection
from projections.base import SqlProjection
from projections.chats import ChatsProjection
from projections.library import LibraryProjection
from projections.vectors import VectorsProjection

PROJECTIONS: dict[str, type[SqlProjection]] = {
    p.name: p for p in (AccountsProjection, ApiKeysProjection, LibraryProjection, VectorsProjection,
                        ChatsProjection, AuditLogProjection)
}
