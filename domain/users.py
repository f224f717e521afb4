"""The User aggregate and the UserDirectory that keeps usernames unique and an admin in place."""

from __future__ import annotations

import re
from datetime import datetime
from uuid import NAMESPACE_URL, UUID, uuid5

from domain.audited import Audited
from domain.errors import InvalidInput, LastAdmin, UsernameTaken
from domain.principal import Actor, Role
from domain.sealed import REASON_MAX

USERNAME_RE = re.compile(r"^[a-z][a-z0-9._@-]*$")
USERNAME_MIN, USERNAME_MAX = 2, 64
PASSWORD_MIN, PASSWORD_MAX = 8, 250
BIO_MAX = 1000


def check_username(username: str) -> str:
    if not (USERNAME_MIN <= len(username) <= USERNAME_MAX) or not USERNAME_RE.fullmatch(username):
        raise InvalidInput(
            "Username must be 2-64 characters, start with a lowercase letter and contain only "
            "lowercase letters, digits, '.', '_', '@' and '-'."
        )
    return username


def check_password(password: str) -> str:
    if not (PASSWORD_MIN <= len(password) <= PASSWORD_MAX):
        raise InvalidInput(f"Password must be {PASSWORD_MIN}-{PASSWORD_MAX} characters.")
    return password


def check_role(role: str) -> Role:
    try:
        return Role(role)
    except ValueError:
        raise InvalidInput("Invalid role. Use one of: admin, manager, default.") from None


DAILY_LIMIT_MAX = 2**53 - 1  # fits every column it is stored in, and a JavaScript number exactly


def check_daily_limit(limit: int | None) -> int | None:
    if limit is not None and not 1 <= limit <= DAILY_LIMIT_MAX:
        raise InvalidInput(f"dailyMessageLimit must be null or between 1 and {DAILY_LIMIT_MAX}.")
    return limit


def check_reason(reason: str) -> str:
    reason = reason.strip()
    if not 1 <= len(reason) <= REASON_MAX:
        raise InvalidInput(f"A reason of 1-{REASON_MAX} characters is required.")
    return reason


def user_uuid(user_id: int) -> UUID:
    return uuid5(NAMESPACE_URL, f"ledgerllm:/users/{user_id}")


class User(Audited):
    """A person (or the owner) that keys are issued to and that every event is attributed to."""

    class Registered(Audited.Created):
        sealed_fields = ("bio",)  # profile text: under the user's data key (domain/sealed.py)
        sealed_owner = "user_id"
        user_id: int
        username: str
        role: str
        password_hash: str | None
        daily_message_limit: int | None
        bio: str

        def apply(self, user: User) -> None:
            user.user_id = self.user_id
            user.username = self.username
            user.role = Role(self.role)
            user.password_hash = self.password_hash
            user.daily_message_limit = self.daily_message_limit
            user.bio = self.bio
            user.pfp_filename = None
            user.suspended = False
            user.deleted = False
            user.token_version = 1

    class Renamed(Audited.Event):
        username: str

        def apply(self, user: User) -> None:
            user.username = self.username

    class RoleChanged(Audited.Event):
        role: str

        def apply(self, user: User) -> None:
            user.role = Role(self.role)

    class ProfileUpdated(Audited.Event):
        sealed_fields = ("bio", "pfp_filename")
        sealed_owner = None  # the user this event's aggregate is
        daily_message_limit: int | None
        bio: str
        pfp_filename: str | None

        def apply(self, user: User) -> None:
            user.daily_message_limit = self.daily_message_limit
            user.bio = self.bio
            user.pfp_filename = self.pfp_filename

    class PasswordChanged(Audited.Event):
        """Carries the slow hash only; the password never enters the store."""

        password_hash: str

        def apply(self, user: User) -> None:
            user.password_hash = self.password_hash
            user.token_version += 1

    class Suspended(Audited.Event):
        def apply(self, user: User) -> None:
            user.suspended = True
            user.token_version += 1

    class Unsuspended(Audited.Event):
        def apply(self, user: User) -> None:
            user.suspended = False

    class SessionsRevoked(Audited.Event):
        """Every JWT issued before this event stops working."""

        def apply(self, user: User) -> None:
            user.token_version += 1

    class AuthTokenIssued(Audited.Event):
        """A single-use sign-in token; only its SHA-256 hash is recorded."""

        token_hash: str
        expires_at: datetime

        def apply(self, user: User) -> None:
            pass

    class AuthTokenRedeemed(Audited.Event):
        token_hash: str

        def apply(self, user: User) -> None:
            pass

    class Deleted(Audited.Event):
        def apply(self, user: User) -> None:
            user.deleted = True
            user.token_version += 1

    class Erased(Audited.Event):
        """The user's data key was destroyed: their sealed content (chats, profile) reads as
        erased from here on, and read models overwrite the copies they hold. Records who and
        why, never the content."""

        user_id: int
        reason: str

        def apply(self, user: User) -> None:
            pass


    @classmethod
    def register(
        cls,
        actor: Actor,
        user_id: int,
        username: str,
        role: Role,
        password_hash: str | None,
        daily_message_limit: int | None = None,
        bio: str = "",
    ) -> User:
        return cls._create(
            cls.Registered,
            id=user_uuid(user_id),
            **actor.stamp(),
            user_id=user_id,
            username=check_username(username),
            role=role.value,
            password_hash=password_hash,
            daily_message_limit=check_daily_limit(daily_message_limit),
            bio=bio[:BIO_MAX],
        )

    def rename(self, actor: Actor, username: str) -> None:
        if username != self.username:
            self._record(self.Renamed, actor, username=check_username(username))

    def change_role(self, actor: Actor, role: Role) -> None:
        if role is not self.role:
            self._record(self.RoleChanged, actor, role=role.value)

    def update_profile(
        self, actor: Actor, daily_message_limit: int | None, bio: str, pfp_filename: str | None
    ) -> None:
        if len(bio) > BIO_MAX:
            raise InvalidInput(f"Bio must be at most {BIO_MAX} characters.")
        self._record(
            self.ProfileUpdated,
            actor,
            daily_message_limit=check_daily_limit(daily_message_limit),
            bio=bio,
            pfp_filename=pfp_filename,
        )

    def change_password(self, actor: Actor, password_hash: str) -> None:
        self._record(self.PasswordChanged, actor, password_hash=password_hash)

    def suspend(self, actor: Actor) -> None:
        if not self.suspended:
            self._record(self.Suspended, actor)

    def unsuspend(self, actor: Actor) -> None:
        if self.suspended:
            self._record(self.Unsuspended, actor)

    def revoke_sessions(self, actor: Actor) -> None:
        self._record(self.SessionsRevoked, actor)

    def issue_auth_token(self, actor: Actor, token_hash: str, expires_at: datetime) -> None:
        self._record(self.AuthTokenIssued, actor, token_hash=token_hash, expires_at=expires_at)

    def redeem_auth_token(self, actor: Actor, token_hash: str) -> None:
        self._record(self.AuthTokenRedeemed, actor, token_hash=token_hash)

    def delete(self, actor: Actor) -> None:
        if not self.deleted:
            self._record(self.Deleted, actor)

    def erase(self, actor: Actor, reason: str) -> None:
        """Record the erasure (also of a deleted user: erasing after deleting is the usual order)."""
        self._record(self.Erased, actor, user_id=self.user_id, reason=check_reason(reason))

    @property
    def is_active_admin(self) -> bool:
        return self.role is Role.ADMIN and not self.suspended and not self.deleted


DIRECTORY_ID = uuid5(NAMESPACE_URL, "ledgerllm:/user-directory")


class UserDirectory(Audited):
    """One aggregate for all users: hands out user ids, keeps usernames unique and keeps an
    active admin in place. Every command that touches those facts saves it together with the
    user, so two racing requests cannot both take a name or both remove the last admin:
    the second save fails on the directory's version and is retried."""

    class Opened(Audited.Created):
        def apply(self, directory: UserDirectory) -> None:
            directory.usernames = {}
            directory.active_admins = set()
            directory.last_user_id = 0

    class Entered(Audited.Event):
        user_id: int
        username: str
        active_admin: bool

        def apply(self, directory: UserDirectory) -> None:
            directory.usernames[self.username] = self.user_id
            directory.last_user_id = max(directory.last_user_id, self.user_id)
            if self.active_admin:
                directory.active_admins.add(self.user_id)

    class NameChanged(Audited.Event):
        user_id: int
        old_username: str
        username: str

        def apply(self, directory: UserDirectory) -> None:
            directory.usernames.pop(self.old_username, None)
            directory.usernames[self.username] = self.user_id

    class AdminStatusChanged(Audited.Event):
        user_id: int
        active_admin: bool

        def apply(self, directory: UserDirectory) -> None:
            if self.active_admin:
                directory.active_admins.add(self.user_id)
            else:
                directory.active_admins.discard(self.user_id)

    class Left(Audited.Event):
        user_id: int
        username: str

        def apply(self, directory: UserDirectory) -> None:
            directory.usernames.pop(self.username, None)
            directory.active_admins.discard(self.user_id)


    @classmethod
    def open(cls, actor: Actor) -> UserDirectory:
        return cls._create(cls.Opened, id=DIRECTORY_ID, **actor.stamp())

    def next_user_id(self) -> int:
        return self.last_user_id + 1

    def id_of(self, username: str) -> int | None:
        return self.usernames.get(username)

    def check_username_free(self, username: str) -> None:
        if username in self.usernames:
            raise UsernameTaken()

    def enter(self, actor: Actor, user: User) -> None:
        self.check_username_free(user.username)
        self._record(
            self.Entered,
            actor,
            user_id=user.user_id,
            username=user.username,
            active_admin=user.is_active_admin,
        )

    def rename(self, actor: Actor, user_id: int, old: str, new: str) -> None:
        if old != new:
            self.check_username_free(new)
            self._record(self.NameChanged, actor, user_id=user_id, old_username=old, username=new)

    def check_keeps_an_admin(self, user_id: int, what: str) -> None:
        """Refuse a change that would leave no active admin (upstream only checks demotion)."""
        if self.active_admins == {user_id}:
            raise LastAdmin(what)

    def note_admin_status(self, actor: Actor, user: User) -> None:
        active = user.is_active_admin
        if active != (user.user_id in self.active_admins):
            if not active:
                self.check_keeps_an_admin(user.user_id, "change")
            self._record(self.AdminStatusChanged, actor, user_id=user.user_id, active_admin=active)

    def leave(self, actor: Actor, user: User) -> None:
        self.check_keeps_an_admin(user.user_id, "delete")
        self._record(self.Left, actor, user_id=user.user_id, username=user.username)
