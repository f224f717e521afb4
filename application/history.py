"""Reading chat history: a caller's own history, admin chat logs, and exports."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

import msgspec

from application.access import check_scope
from application.ledger import Context
from application.threads import owned_thread
from application.workspaces import visible_workspace
from domain.errors import InvalidInput, PermissionDenied
from domain.timefmt import unix
from domain.principal import Principal, Role, Scope
from projections.chats import NO_SESSION, NO_THREAD, full_response

MAX_LIMIT = 1000
PAGE = 20
EXPORT_TYPES = ("json", "jsonl", "csv", "jsonAlpaca")


def to_history(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Upstream's convertToChatHistory: each exchange becomes a user and an assistant entry."""
    out = []
    for r in rows:
        response = msgspec.json.decode(full_response(r))
        if not isinstance(r["prompt"], str) or not isinstance(response.get("text"), str):
            continue
        sent = unix(r["created_at"])
        out.append({"role": "user", "content": r["prompt"], "sentAt": sent,
                    "attachments": response.get("attachments", []), "chatId": r["id"]})
        out.append({"type": response.get("type", "chat"), "role": "assistant", "content": response["text"],
                    "sources": response.get("sources", []), "chatId": r["id"], "sentAt": sent,
                    "feedbackScore": None if r["feedback"] is None else bool(r["feedback"]),
                    "metrics": response.get("metrics", {})})
    return out


def workspace_history(ctx: Context, principal: Principal, slug: str, session_id: str | None, limit: Any,
                      order: Any) -> list[dict[str, Any]]:
    """The caller's own exchanges in the workspace's default thread (or one API session),
    included ones only. Upstream lists every user's, and reset sessions too."""
    check_scope(principal, Scope.READ)
    workspace = visible_workspace(ctx, principal, slug)
    limit = _limit(limit)
    if order not in (None, "asc", "desc"):
        raise InvalidInput("orderBy must be asc or desc")
    with ctx.chats.view.read() as tx:
        rows = tx.all(
            "SELECT id, prompt, reply, response, feedback, created_at FROM chats WHERE workspace_id = ? AND user_id = ?"
            " AND thread_key = ? AND session_key = ? AND include = 1 AND embed_id IS NULL"
            " ORDER BY position DESC LIMIT ?",
            (workspace.id, principal.user_id, NO_THREAD, NO_SESSION if session_id is None else session_id, limit))
    rows.reverse()
    if order == "desc":
        rows.reverse()
    return to_history(rows)


def thread_history(ctx: Context, principal: Principal, slug: str, thread_slug: str) -> list[dict[str, Any]]:
    check_scope(principal, Scope.READ)
    workspace = visible_workspace(ctx, principal, slug)
    thread = owned_thread(ctx, principal, workspace, thread_slug)
    with ctx.chats.view.read() as tx:
        rows = tx.all("SELECT id, prompt, reply, response, feedback, created_at FROM chats WHERE thread_key = ? AND"
                      " include = 1 ORDER BY position", (thread.id,))
    return to_history(rows)


def _limit(value: Any) -> int:
    if value is None:
        return 100
    try:
        limit = int(value)
    except (TypeError, ValueError):
        raise InvalidInput("limit must be a number") from None
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidInput(f"limit must be between 1 and {MAX_LIMIT}")
    return limit


def _check_chat_logs(principal: Principal) -> None:
    """Chat logs (view, export): admins and managers, with the admin scope (reference §3.5)."""
    check_scope(principal, Scope.ADMIN)
    if principal.role is Role.DEFAULT:
        raise PermissionDenied("Your role cannot read chat logs.")


def _log_rows(ctx: Context, offset: int, limit: int) -> list[dict[str, Any]]:
    with ctx.chats.view.read() as tx:
        rows = tx.all("SELECT id, workspace_id, user_id, thread_key, session_key, embed_id, api_key_id, prompt,"
                      " reply, response, include, status, feedback, created_at, updated_at FROM chats"
                      " ORDER BY position DESC LIMIT ? OFFSET ?", (limit, offset))
    if not rows:
        return []
    with ctx.library.view.read() as tx:
        spaces = {r["id"]: r for r in tx.all("SELECT id, name, slug FROM workspaces")}
    with ctx.accounts.view.read() as tx:
        names = {r["id"]: r["username"] for r in tx.all("SELECT id, username FROM users")}
    return [{**r, "workspace": spaces.get(r["workspace_id"]), "username": names.get(r["user_id"])} for r in rows]


def admin_chats(ctx: Context, principal: Principal, offset: Any) -> tuple[list[dict[str, Any]], bool]:
    """Newest first, 20 a page; every row names its workspace and its user (never "unknown")."""
    _check_chat_logs(principal)
    if offset is None:
        offset = 0
    if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
        raise InvalidInput("offset must be a non-negative integer")
    rows = _log_rows(ctx, offset * PAGE, PAGE + 1)
    chats = []
    for r in rows[:PAGE]:
        ws = r["workspace"] or {}
        chats.append({"id": r["id"], "workspaceId": r["workspace_id"], "prompt": r["prompt"], "response": full_response(r),
                      "createdAt": r["created_at"], "user_id": r["user_id"],
                      "thread_id": None if r["thread_key"] == NO_THREAD else r["thread_key"],
                      "api_session_id": r["session_key"] or None, "include": bool(r["include"]),
                      "feedbackScore": None if r["feedback"] is None else bool(r["feedback"]),
                      "workspace": {"name": ws.get("name"), "slug": ws.get("slug")},
                      "user": {"username": r["username"]}, "apiKeyId": r["api_key_id"]})
    return chats, len(rows) > PAGE


def export_chats(ctx: Context, principal: Principal, kind: str) -> tuple[str, str]:
    """(body, content type). CSV cells that a spreadsheet would run as a formula are quoted
    with a leading apostrophe (upstream lets `=`, `+`, `-`, `@` through)."""
    _check_chat_logs(principal)
    if kind not in EXPORT_TYPES:
        raise InvalidInput(f"Invalid export type: {kind}")
    rows, offset, batch = [], 0, 5000
    while True:
        page = _log_rows(ctx, offset, batch)
        rows += page
        if len(page) < batch:
            break
        offset += batch
    rows.reverse()
    records = [{"id": r["id"], "workspace": (r["workspace"] or {}).get("name"), "prompt": r["prompt"],
                "response": r["reply"], "sent_at": r["created_at"], "username": r["username"],
                "rating": {None: "--", 1: "GOOD", 0: "BAD"}[r["feedback"]]} for r in rows]
    if kind == "json":
        return json.dumps(records), "application/json"
    if kind == "jsonl":
        return "".join(json.dumps(r) + "\n" for r in records), "application/jsonl"
    if kind == "jsonAlpaca":
        alpaca = [{"instruction": r["prompt"], "input": "", "output": r["response"]} for r in records]
        return json.dumps(alpaca), "application/json"
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["id", "username", "workspace", "prompt", "response", "sent_at", "rating"])
    for r in records:
        writer.writerow([_cell(r[k]) for k in ("id", "username", "workspace", "prompt", "response", "sent_at", "rating")])
    return out.getvalue(), "text/csv"


def _cell(value: Any) -> Any:
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value
