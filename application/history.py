"""Reading chat history: a caller's own history, admin chat logs, and exports."""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime

import msgspec

from application.access import check_scope, visible_workspace
from application.ledger import Context
from application.ports import JsonObject
from application.rows import ChatLogRow, HistoryRow
from application.threads import owned_thread
from application.workspaces import get_workspace_by_id
from domain.errors import InvalidInput, PermissionDenied
from domain.timefmt import iso, unix, utc
from domain.principal import Principal, Role, Scope

MAX_LIMIT = 1000
PAGE = 20
EXPORT_TYPES = ("json", "jsonl", "csv", "jsonAlpaca")
EXPORT_BATCH = 5000


def to_history(rows: list[HistoryRow]) -> list[JsonObject]:
    """Upstream's convertToChatHistory: each exchange becomes a user and an assistant entry."""
    out: list[JsonObject] = []
    for r in rows:
        response = msgspec.json.decode(r.response)
        if not isinstance(r.prompt, str) or not isinstance(response.get("text"), str):
            continue
        sent = unix(r.created_at)
        out.append({"role": "user", "content": r.prompt, "sentAt": sent,
                    "attachments": response.get("attachments", []), "chatId": r.id})
        out.append({"type": response.get("type", "chat"), "role": "assistant", "content": response["text"],
                    "sources": response.get("sources", []), "chatId": r.id, "sentAt": sent,
                    "feedbackScore": None if r.feedback is None else bool(r.feedback),
                    "metrics": response.get("metrics", {})})
    return out


def history_scope(principal: Principal) -> Scope:
    """A key may read its own history and threads with `read`, or with `chat` (what it chats with)."""
    return Scope.CHAT if principal.has_scope(Scope.CHAT) else Scope.READ


def workspace_history(ctx: Context, principal: Principal, slug: str, session_id: str | None, limit: int | None,
                      order: str | None) -> list[JsonObject]:
    """The caller's own exchanges in the workspace's default thread (or one API session),
    included ones only. Upstream lists every user's, and reset sessions too."""
    workspace = visible_workspace(ctx, principal, slug, history_scope(principal))
    return to_history(ctx.chats.history(workspace.id, principal.user_id, session_id, _limit(limit),
                                        newest_first=order == "desc"))


def thread_history(ctx: Context, principal: Principal, slug: str, thread_slug: str) -> list[JsonObject]:
    workspace = visible_workspace(ctx, principal, slug, history_scope(principal))
    thread = owned_thread(ctx, principal, workspace, thread_slug)
    return to_history(ctx.chats.thread_history(thread.id))


def _limit(value: int | None) -> int:
    if value is None:
        return 100
    if not 1 <= value <= MAX_LIMIT:
        raise InvalidInput(f"limit must be between 1 and {MAX_LIMIT}")
    return value


def _check_chat_logs(principal: Principal) -> None:
    """Chat logs (view, export): admins and managers, with the admin scope (reference §3.5)."""
    check_scope(principal, Scope.ADMIN)
    if principal.role is Role.DEFAULT:
        raise PermissionDenied("Your role cannot read chat logs.")


class LogEntry(msgspec.Struct, frozen=True):
    row: ChatLogRow
    workspace_name: str | None
    workspace_slug: str | None
    username: str | None


def _log_rows(ctx: Context, offset: int, limit: int) -> list[LogEntry]:
    return _log_entries(ctx, ctx.chats.chat_log(offset, limit))


def _log_entries(ctx: Context, rows: list[ChatLogRow]) -> list[LogEntry]:
    """`rows` with their workspace's and user's names (one lookup per workspace and one for the users)."""
    if not rows:
        return []
    spaces = {i: get_workspace_by_id(ctx, i) for i in {r.workspace_id for r in rows}}
    users = ctx.accounts.users({r.user_id for r in rows})
    out = []
    for r in rows:
        ws, user = spaces.get(r.workspace_id), users.get(r.user_id)
        out.append(LogEntry(r, ws.name if ws else None, ws.slug if ws else None, user.username if user else None))
    return out


def admin_chats(ctx: Context, principal: Principal, offset: int | None) -> tuple[list[JsonObject], bool]:
    """Newest first, 20 a page; every row names its workspace and its user (never "unknown")."""
    _check_chat_logs(principal)
    entries = _log_rows(ctx, (offset or 0) * PAGE, PAGE + 1)
    chats = []
    for e in entries[:PAGE]:
        r = e.row
        chats.append({"id": r.id, "workspaceId": r.workspace_id, "prompt": r.prompt, "response": r.response,
                      "createdAt": r.created_at, "user_id": r.user_id, "thread_id": r.thread_id,
                      "api_session_id": r.session_id, "include": r.include,
                      "feedbackScore": None if r.feedback is None else bool(r.feedback),
                      "workspace": {"name": e.workspace_name, "slug": e.workspace_slug},
                      "user": {"username": e.username}, "apiKeyId": r.api_key_id})
    return chats, len(entries) > PAGE


def export_chats(ctx: Context, principal: Principal, kind: str, after: int | None = None,
                 since: datetime | None = None) -> str:
    """The export in `kind`'s format, oldest first. With `after` (a chat id, e.g. the last line
    of the previous export), only chats recorded after that one; with `since`, only chats sent
    at or after that moment: an archive follows the log without full dumps. CSV cells that a
    spreadsheet would run as a formula are defused with a leading apostrophe (upstream lets
    `=`, `+`, `-`, `@` through)."""
    _check_chat_logs(principal)
    if kind not in EXPORT_TYPES:
        raise InvalidInput(f"Invalid export type: {kind}")
    position = 0
    if after is not None:
        found = ctx.chats.chat_position(after)
        if found is None:
            raise InvalidInput(f"Chat {after} is not in the chat log (deleted?): resume with since=<its sent_at>.")
        position = found
    try:
        cutoff = None if since is None else iso(utc(since))
    except ValueError as e:
        raise InvalidInput(f"since: {e}") from None
    entries: list[LogEntry] = []
    while page := _log_entries(ctx, ctx.chats.chat_log_after(position, cutoff, EXPORT_BATCH)):
        entries += page
        position = page[-1].row.position
    records = [{"id": e.row.id, "workspace": e.workspace_name, "prompt": e.row.prompt, "response": e.row.reply,
                "sent_at": e.row.created_at, "username": e.username, "rating": RATINGS[e.row.feedback]}
               for e in entries]
    if kind == "json":
        return json.dumps(records)
    if kind == "jsonl":
        return "".join(json.dumps(r) + "\n" for r in records)
    if kind == "jsonAlpaca":
        return json.dumps([{"instruction": r["prompt"], "input": "", "output": r["response"]} for r in records])
    out = io.StringIO()
    writer = csv.writer(out)
    columns = ("id", "username", "workspace", "prompt", "response", "sent_at", "rating")
    writer.writerow(columns)
    for r in records:
        writer.writerow([defuse_cell(r[k]) for k in columns[:-1]] + [UNRATED_CSV if r["rating"] == UNRATED else r["rating"]])
    return out.getvalue()


UNRATED = "--"
UNRATED_CSV = ""  # upstream's "--" would be a formula prefix: CSV leaves the cell empty
RATINGS = {None: UNRATED, 1: "GOOD", 0: "BAD"}
# What a spreadsheet may start a formula with: the ASCII and full-width signs, tab and CR.
FORMULA_PREFIXES = frozenset("=+-@\t\r\uff1d\uff0b\uff0d\uff20")
# What may stand before it and be skipped by the spreadsheet: spaces, newlines, zero-width characters, BOM.
SKIPPED = " \n\u00a0\u200b\u200c\u200d\u2060\ufeff"


def defuse_cell(value: object) -> object:
    """A text cell a spreadsheet would run as a formula gets a leading apostrophe; others are kept."""
    if isinstance(value, str) and value.lstrip(SKIPPED)[:1] in FORMULA_PREFIXES:
        return "'" + value
    return value
