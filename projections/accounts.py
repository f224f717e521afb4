"""Read model of users, invites, sign-in tokens, system settings and webhooks."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from application.rows import AuthTokenRow, InviteRow, UserRef, UserRow, WebhookRow
from domain.invites import Invite
from domain.system import System
from domain.sealed import ERASED
from domain.users import User
from domain.webhooks import Webhook
from projections.base import SqlProjection, Tx, handles, iso
from projections.readmodel import ReadModelView


class AccountsProjection(SqlProjection):
    name = "accounts"
    tables = ["users", "invites", "auth_tokens", "system_settings", "webhooks"]
    schema = [
        """CREATE TABLE IF NOT EXISTS users (
            id BIGINT PRIMARY KEY, aggregate_id TEXT NOT NULL UNIQUE, username TEXT NOT NULL,
            role TEXT NOT NULL,
            suspended INTEGER NOT NULL DEFAULT 0, deleted INTEGER NOT NULL DEFAULT 0,
            token_version INTEGER NOT NULL DEFAULT 1, daily_message_limit INTEGER, bio TEXT,
            pfp_filename TEXT, created_at TEXT NOT NULL, updated_at TEXT NOT NULL)""",
        "CREATE INDEX IF NOT EXISTS users_username ON users (username)",
        """CREATE TABLE IF NOT EXISTS invites (
            id BIGINT PRIMARY KEY, aggregate_id TEXT NOT NULL UNIQUE, code_hash TEXT NOT NULL UNIQUE, display_prefix TEXT NOT NULL,
            status TEXT NOT NULL, claimed_by BIGINT, workspace_ids TEXT NOT NULL,
            created_by BIGINT NOT NULL, created_at TEXT NOT NULL, updated_at TEXT NOT NULL)""",
        """CREATE TABLE IF NOT EXISTS auth_tokens (
            token_hash TEXT PRIMARY KEY, user_id BIGINT NOT NULL, expires_at TEXT NOT NULL,
            used INTEGER NOT NULL DEFAULT 0)""",
        "CREATE TABLE IF NOT EXISTS system_settings (label TEXT PRIMARY KEY, value TEXT)",
        """CREATE TABLE IF NOT EXISTS webhooks (
            id BIGINT PRIMARY KEY, aggregate_id TEXT NOT NULL UNIQUE, url TEXT NOT NULL, types TEXT NOT NULL,
            created_by BIGINT NOT NULL, created_by_key BIGINT, created_at TEXT NOT NULL, start_position BIGINT NOT NULL,
            removed_at TEXT)""",
    ]

    # users ---------------------------------------------------------------------------------
    @handles(User.Registered)
    def _registered(self, tx: Tx, e: User.Registered) -> None:
        tx.execute(
            "INSERT INTO users (id, aggregate_id, username, role, daily_message_limit, bio, created_at,"
            " updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (e.user_id, str(e.originator_id), e.username, e.role, e.daily_message_limit, e.bio, iso(e.timestamp), iso(e.timestamp)),
        )

    def _set(self, tx: Tx, e: User.Event, assignments: str, *values: object) -> None:
        tx.execute(
            f"UPDATE users SET {assignments}, updated_at = ? WHERE aggregate_id = ?",
            (*values, iso(e.timestamp), str(e.originator_id)),
        )

    @handles(User.Renamed)
    def _renamed(self, tx: Tx, e: User.Renamed) -> None:
        self._set(tx, e, "username = ?", e.username)

    @handles(User.RoleChanged)
    def _role(self, tx: Tx, e: User.RoleChanged) -> None:
        self._set(tx, e, "role = ?", e.role)

    @handles(User.ProfileUpdated)
    def _profile(self, tx: Tx, e: User.ProfileUpdated) -> None:
        self._set(tx, e, "daily_message_limit = ?, bio = ?, pfp_filename = ?",
                  e.daily_message_limit, e.bio, e.pfp_filename)

    @handles(User.PasswordChanged, User.SessionsRevoked)
    def _sessions(self, tx: Tx, e: User.Event) -> None:
        self._set(tx, e, "token_version = token_version + 1")

    @handles(User.Suspended)
    def _suspended(self, tx: Tx, e: User.Suspended) -> None:
        self._set(tx, e, "suspended = 1, token_version = token_version + 1")

    @handles(User.Unsuspended)
    def _unsuspended(self, tx: Tx, e: User.Unsuspended) -> None:
        self._set(tx, e, "suspended = 0")

    @handles(User.Erased)
    def _erased(self, tx: Tx, e: User.Erased) -> None:
        # As the events now read (domain/sealed.py): a bio ERASED (an empty one stays empty),
        # the picture's file name gone.
        self._set(tx, e, "bio = CASE WHEN bio IS NULL OR bio = '' THEN bio ELSE ? END, pfp_filename = NULL", ERASED)

    @handles(User.Deleted)
    def _deleted(self, tx: Tx, e: User.Deleted) -> None:
        self._set(tx, e, "deleted = 1, token_version = token_version + 1")

    @handles(User.AuthTokenIssued)
    def _token_issued(self, tx: Tx, e: User.AuthTokenIssued) -> None:
        tx.execute(
            "INSERT INTO auth_tokens (token_hash, user_id, expires_at)"
            " SELECT ?, id, ? FROM users WHERE aggregate_id = ?",
            (e.token_hash, iso(e.expires_at), str(e.originator_id)),
        )

    @handles(User.AuthTokenRedeemed)
    def _token_redeemed(self, tx: Tx, e: User.AuthTokenRedeemed) -> None:
        tx.execute("UPDATE auth_tokens SET used = 1 WHERE token_hash = ?", (e.token_hash,))

    # invites -------------------------------------------------------------------------------
    @handles(Invite.Created)
    def _invite(self, tx: Tx, e: Invite.Created) -> None:
        tx.execute(
            "INSERT INTO invites (id, aggregate_id, code_hash, display_prefix, status, workspace_ids,"
            " created_by, created_at, updated_at) VALUES (?, ?, ?, ?, 'pending', ?, ?, ?, ?)",
            (e.invite_id, str(e.originator_id), e.code_hash, e.display_prefix, json.dumps(list(e.workspace_ids)),
             e.actor_user_id, iso(e.timestamp), iso(e.timestamp)),
        )

    @handles(Invite.Claimed)
    def _claimed(self, tx: Tx, e: Invite.Claimed) -> None:
        tx.execute("UPDATE invites SET status = 'claimed', claimed_by = ?, updated_at = ? WHERE aggregate_id = ?",
                   (e.user_id, iso(e.timestamp), str(e.originator_id)))

    @handles(Invite.Disabled)
    def _disabled(self, tx: Tx, e: Invite.Disabled) -> None:
        tx.execute("UPDATE invites SET status = 'disabled', updated_at = ? WHERE aggregate_id = ?",
                   (iso(e.timestamp), str(e.originator_id)))

    # system --------------------------------------------------------------------------------
    def _setting(self, tx: Tx, label: str, value: str | None) -> None:
        tx.execute(
            "INSERT INTO system_settings (label, value) VALUES (?, ?)"
            " ON CONFLICT (label) DO UPDATE SET value = excluded.value",
            (label, value),
        )

    @handles(System.Installed)
    def _installed(self, tx: Tx, e: System.Installed) -> None:
        self._setting(tx, "owner_user_id", str(e.owner_user_id))
        self._setting(tx, "multi_user_mode", "false")

    @handles(System.MultiUserModeEnabled)
    def _mum(self, tx: Tx, e: System.MultiUserModeEnabled) -> None:
        self._setting(tx, "multi_user_mode", "true")

    @handles(System.SettingsChanged)
    def _settings(self, tx: Tx, e: System.SettingsChanged) -> None:
        for key, value in e.values.items():
            self._setting(tx, f"env:{key}", value)
        for key in e.secret_keys:  # only that a secret is set, never its value
            self._setting(tx, f"secret:{key}", "set")

    @handles(System.PreferencesUpdated)
    def _preferences(self, tx: Tx, e: System.PreferencesUpdated) -> None:
        for label, value in e.values.items():
            self._setting(tx, label, value)

    # webhooks (never their secrets: those are in the secrets store) ------------------------
    @handles(Webhook.Added)
    def _webhook(self, tx: Tx, e: Webhook.Added) -> None:
        tx.execute(
            "INSERT INTO webhooks (id, aggregate_id, url, types, created_by, created_by_key, created_at,"
            " start_position) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (e.webhook_id, str(e.originator_id), e.url, json.dumps(list(e.types)), e.actor_user_id,
             e.actor_api_key_id, iso(e.timestamp), self.position),
        )

    @handles(Webhook.Removed)
    def _webhook_removed(self, tx: Tx, e: Webhook.Removed) -> None:
        tx.execute("UPDATE webhooks SET removed_at = ? WHERE aggregate_id = ?", (iso(e.timestamp), str(e.originator_id)))


class Accounts(ReadModelView):
    """Queries on users, invites, sign-in tokens and system settings."""

    _USER = ("SELECT id, username, role, suspended, deleted, token_version, daily_message_limit, bio,"
             " pfp_filename, created_at, updated_at FROM users")

    def stalled(self) -> bool:
        return self.runner.stall is not None

    def user(self, user_id: int) -> UserRow | None:
        if not -(2**63) <= user_id < 2**63:  # no such user; SQLite cannot even bind it
            return None
        with self._read() as tx:
            return _user(tx.one(self._USER + " WHERE id = ?", (user_id,)))

    def user_named(self, username: str) -> UserRow | None:
        with self._read() as tx:
            return _user(tx.one(self._USER + " WHERE username = ? AND deleted = 0", (username,)))

    def users(self, user_ids: Iterable[int]) -> dict[int, UserRow]:
        ids = sorted(set(user_ids))
        if not ids:
            return {}
        with self._read() as tx:
            rows = tx.all(self._USER + f" WHERE id IN ({','.join('?' * len(ids))})", ids)
        return {r["id"]: _user(r) for r in rows}  # type: ignore[misc]

    def active_users(self) -> list[UserRow]:
        with self._read() as tx:
            return [_user(r) for r in tx.all(self._USER + " WHERE deleted = 0 ORDER BY id")]  # type: ignore[misc]

    def user_id_of(self, aggregate_id: str) -> int | None:
        """Stale is safe here: it only names keys to drop from caches."""
        with self._read(stale_ok=True) as tx:
            return tx.scalar("SELECT id FROM users WHERE aggregate_id = ?", (aggregate_id,))

    def setting(self, label: str) -> str | None:
        with self._read() as tx:
            return tx.scalar("SELECT value FROM system_settings WHERE label = ?", (label,))

    def settings(self) -> dict[str, str | None]:
        with self._read() as tx:
            return {r["label"]: r["value"] for r in tx.all("SELECT label, value FROM system_settings")}

    def is_multi_user(self) -> bool:
        return self.setting("multi_user_mode") == "true"

    def owner_id(self) -> int:
        return int(self.setting("owner_user_id") or 1)

    def auth_token(self, token_hash: str) -> AuthTokenRow | None:
        with self._read() as tx:
            row = tx.one("SELECT user_id, expires_at, used FROM auth_tokens WHERE token_hash = ?", (token_hash,))
        return None if row is None else AuthTokenRow(row["user_id"], row["expires_at"], bool(row["used"]))

    def user_id_named(self, username: str) -> int | None:
        """Stale is safe here: it only turns a name into an id for an audit filter."""
        with self._read(stale_ok=True) as tx:
            found = tx.scalar("SELECT id FROM users WHERE username = ? ORDER BY deleted, id", (username,))
        return None if found is None else int(found)

    _INVITE = ("SELECT i.id, i.display_prefix, i.status, i.claimed_by, c.username AS claimed_name, i.workspace_ids,"
               " i.created_by, m.username AS created_name, i.created_at, i.updated_at FROM invites i"
               " LEFT JOIN users c ON c.id = i.claimed_by LEFT JOIN users m ON m.id = i.created_by")

    def invite(self, invite_id: int) -> InviteRow | None:
        with self._read() as tx:
            row = tx.one(self._INVITE + " WHERE i.id = ?", (invite_id,))
        return None if row is None else _invite(row)

    def invite_by_code(self, code_hash: str) -> InviteRow | None:
        with self._read() as tx:
            row = tx.one(self._INVITE + " WHERE i.code_hash = ?", (code_hash,))
        return None if row is None else _invite(row)

    def invites(self) -> list[InviteRow]:
        with self._read() as tx:
            return [_invite(r) for r in tx.all(self._INVITE + " ORDER BY i.id")]

    _WEBHOOK = ("SELECT id, url, types, created_by, created_by_key, created_at, start_position, removed_at"
                " FROM webhooks")

    def webhooks(self, include_removed: bool = False) -> list[WebhookRow]:
        where = "" if include_removed else " WHERE removed_at IS NULL"
        with self._read() as tx:
            return [_webhook(r) for r in tx.all(self._WEBHOOK + where + " ORDER BY id")]

    def webhook(self, webhook_id: int) -> WebhookRow | None:
        with self._read() as tx:
            row = tx.one(self._WEBHOOK + " WHERE id = ?", (webhook_id,))
        return None if row is None else _webhook(row)


def _webhook(r: dict[str, Any]) -> WebhookRow:
    return WebhookRow(id=r["id"], url=r["url"], types=tuple(json.loads(r["types"])), created_by=r["created_by"],
                      created_by_key=r["created_by_key"], created_at=r["created_at"], start=r["start_position"],
                      removed_at=r["removed_at"])


def _invite(r: dict[str, Any]) -> InviteRow:
    def who(user_id: int | None, name: str | None) -> UserRef | None:
        return None if user_id is None else UserRef(user_id, name)

    return InviteRow(
        id=r["id"], display_prefix=r["display_prefix"], status=r["status"],
        claimed_by=who(r["claimed_by"], r["claimed_name"]), workspace_ids=tuple(json.loads(r["workspace_ids"])),
        created_by=who(r["created_by"], r["created_name"]), created_at=r["created_at"], updated_at=r["updated_at"])


def _user(r: dict[str, Any] | None) -> UserRow | None:
    if r is None:
        return None
    return UserRow(id=r["id"], username=r["username"], role=r["role"], suspended=bool(r["suspended"]),
                   deleted=bool(r["deleted"]), token_version=r["token_version"],
                   daily_message_limit=r["daily_message_limit"], bio=r["bio"], pfp_filename=r["pfp_filename"],
                   created_at=r["created_at"], updated_at=r["updated_at"])
