"""Domain errors: noun phrases naming the problem. The API maps them to 4xx answers."""


class DomainError(Exception):
    """A rule of the domain refused a command. `str(err)` is safe to show to the caller."""

    status = 400


class NotFound(DomainError):
    status = 404


class Conflict(DomainError):
    status = 409


class Forbidden(DomainError):
    status = 403


class UserNotFound(NotFound):
    def __init__(self, user_id: object = None) -> None:
        super().__init__("User not found")


class ApiKeyNotFound(NotFound):
    def __init__(self) -> None:
        super().__init__("API key not found")


class InviteNotFound(NotFound):
    def __init__(self) -> None:
        super().__init__("Invite not found or already disabled")


class WebhookNotFound(NotFound):
    def __init__(self) -> None:
        super().__init__("Webhook not found")


class InvalidSignInToken(DomainError):
    """A single-use sign-in token that is unknown, used or expired (upstream answers 401)."""

    status = 401

    def __init__(self) -> None:
        super().__init__("[001] An error occurred while validating the token: Invalid or expired token.")


class UsernameTaken(Conflict):
    def __init__(self) -> None:
        super().__init__("A user with that username already exists")


class LastAdmin(DomainError):
    def __init__(self, what: str = "change") -> None:
        super().__init__(f"No system admins will remain if you {what} this user. Action cancelled.")


class InvalidInput(DomainError):
    """A value broke a domain rule (username format, role, scope, ...)."""


class PermissionDenied(Forbidden):
    def __init__(self, message: str = "You do not have permission to do this.") -> None:
        super().__init__(message)


class MultiUserModeRequired(DomainError):
    status = 401

    def __init__(self) -> None:
        super().__init__("Instance is not in Multi-User mode. Permission denied.")


class Unavailable(DomainError):
    """A service the request needs cannot be reached now; the client should retry shortly."""

    status = 503
    headers = {"Retry-After": "1"}
