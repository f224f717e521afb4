"""Instance settings over /v1/system: read them, change provider settings, count vectors."""

from __future__ import annotations


from application.access import check_admin, check_scope
from application.ledger import Command, Context
from domain.errors import InvalidInput
from domain.principal import Principal, Scope
from domain.system import FORBIDDEN_SETTINGS, PUBLIC_SETTINGS, SECRET_SETTINGS, SYSTEM_ID, System

MASK = "**********"


SettingValue = str | bool | None


def current_settings(ctx: Context, principal: Principal) -> dict[str, SettingValue]:
    """Public values in plain text, secrets as booleans (set or not), as upstream shows them."""
    check_scope(principal, Scope.READ)
    rows = ctx.accounts.settings()
    settings: dict[str, SettingValue] = {
        "VectorDB": "faiss", "EmbeddingEngine": "native", "EmbeddingModelPref": ctx.content.embedder.model_name,
        "MultiUserMode": rows.get("multi_user_mode") == "true", "LLMProvider": None,
    }
    settings.update({label[4:]: value for label, value in rows.items() if label.startswith("env:")})
    secret_keys = {label[7:] for label in rows if label.startswith("secret:")} | ctx.content.secrets.keys()
    settings.update({key: key in secret_keys for key in sorted(SECRET_SETTINGS)})
    return settings


class UpdateEnv(Command, frozen=True, kw_only=True):
    """Change provider settings: public ones are recorded, secrets go to the secrets store."""

    values: dict[str, object]  # as sent: values that are not strings are refused


def update_env(ctx: Context, cmd: UpdateEnv) -> tuple[dict[str, str], str | None]:
    """Returns (newValues with secrets masked, error). Values containing `******` are ignored
    (clients echo masked values back), as upstream. Non-string values are refused (upstream
    crashes on them)."""
    check_admin(cmd.principal)
    bad = [k for k, v in cmd.values.items() if not isinstance(v, str)]
    if bad:
        raise InvalidInput(f"Setting values must be strings: {', '.join(sorted(bad))}")
    body = {k: v for k, v in cmd.values.items() if isinstance(v, str)}
    refused = sorted(k for k in body if k in FORBIDDEN_SETTINGS or (k not in PUBLIC_SETTINGS and k not in SECRET_SETTINGS))
    public = {k: v for k, v in body.items() if k in PUBLIC_SETTINGS and "******" not in v}
    secret = {k: v for k, v in body.items() if k in SECRET_SETTINGS and "******" not in v}
    if any(len(v) > 10_000 for v in (*public.values(), *secret.values())):
        raise InvalidInput("Setting values must be at most 10000 characters")
    if secret:
        ctx.content.secrets.update(secret)

    def attempt() -> None:
        system = ctx.ledger.load(SYSTEM_ID, System)
        system.change_settings(cmd.actor(), {k: v or None for k, v in public.items()}, list(secret))
        if system.pending_events:
            ctx.save(system, project=[ctx.accounts])

    ctx.retrying(attempt)
    new_values = {**public, **{k: MASK for k in secret}}
    error = f"Unknown or protected settings ignored: {', '.join(refused)}" if refused else None
    return new_values, error


def check_env_dump(principal: Principal) -> None:
    """Upstream's env-dump writes its settings to the .env file; ours are already events and
    the secrets store, so there is nothing to write. Admins only (upstream's needs no key)."""
    check_admin(principal)
