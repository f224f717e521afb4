"""Who may do what (reference §3.5), in one place for the workspace and document use cases:
key scopes, roles, and which workspaces a `default` user may see."""

from __future__ import annotations

from application.ledger import Context
from application.rows import WorkspaceRow
from domain.errors import NotFound, PermissionDenied
from domain.principal import Principal, Role, Scope


def check_scope(principal: Principal, scope: Scope) -> None:
    if not principal.has_scope(scope):
        raise PermissionDenied(f"This API key lacks the '{scope.value}' scope.")


def check_can_manage_content(principal: Principal) -> None:
    """Create/update/delete workspaces, upload, embed, pin, manage folders: admins and managers
    (in single-user mode the only user is the owner admin)."""
    check_scope(principal, Scope.WRITE)
    if principal.role is Role.DEFAULT:
        raise PermissionDenied("Your role cannot change workspaces or documents.")


def check_admin(principal: Principal) -> None:
    check_scope(principal, Scope.ADMIN)
    if principal.role is not Role.ADMIN:
        raise PermissionDenied("Only admins can do this.")


def check_admin_or_manager(principal: Principal) -> None:
    check_scope(principal, Scope.ADMIN)
    if principal.role is Role.DEFAULT:
        raise PermissionDenied("Your role does not allow this action.")


def restricted(ctx: Context, principal: Principal) -> bool:
    """`default` users see only workspaces they belong to (multi-user mode)."""
    return principal.role is Role.DEFAULT and ctx.accounts.is_multi_user()


def visible_workspace(ctx: Context, principal: Principal, slug: str, scope: Scope = Scope.READ) -> WorkspaceRow:
    """The workspace if it exists and the caller may see it; otherwise NotFound (not 403, so
    a default user cannot probe other workspaces' slugs). `scope`: what the key needs (chat
    routes: `chat`)."""
    check_scope(principal, scope)
    row = ctx.library.workspace(slug)
    if row is None or (restricted(ctx, principal) and principal.user_id not in ctx.library.member_ids(row.id)):
        raise NotFound(f"Workspace {slug} is not a valid workspace.")
    return row
