"""Who may do what (reference §3.5), in one place for the workspace and document use cases."""

from __future__ import annotations

from domain.errors import PermissionDenied
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
