"""Which model a workspace chats with: the workspace's override, the instance settings
(POST /v1/system/update-env), or the environment (LLM_MODEL, ...), in that order of precedence
for the model; the environment wins for base URL, key and window (operators set those)."""

from __future__ import annotations

import msgspec

from application.ledger import Context
from application.ports import CompletionConfig, LLMDefaults
from application.rows import SettingValue
from domain.errors import DomainError
from domain.system import SECRET_SETTINGS


class LLMNotConfigured(DomainError):
    status = 503

    def __init__(self) -> None:
        super().__init__(
            "No LLM is configured. Set LLM_MODEL (a litellm model string such as openai/gpt-4o-mini or "
            "ollama/llama3) with LLM_API_BASE and LLM_API_KEY as the provider needs, or send "
            "POST /api/v1/system/update-env {\"LLMModel\": ...}."
        )


class CompletionFailed(Exception):
    """The completions port failed: `kind` is provider, timeout, config or cancelled; the
    message is safe to show (it never holds a key)."""

    def __init__(self, message: str, kind: str, status: int | None = None) -> None:
        super().__init__(message)
        self.message, self.kind, self.status = message, kind, status


class ResolvedLLM(msgspec.Struct, frozen=True):
    config: CompletionConfig
    context_window: int
    provider: str


def resolve_llm(ctx: Context, workspace_settings: dict[str, SettingValue]) -> ResolvedLLM:
    defaults: LLMDefaults = ctx.llm_defaults
    model = str(workspace_settings.get("chatModel") or "") or None
    provider = str(workspace_settings.get("chatProvider") or "") or None
    if model and "/" not in model:
        model = f"{provider or 'openai'}/{model}"
    model = model or setting_value(ctx, "LLMModel") or defaults.model
    if not model:
        raise LLMNotConfigured()
    window = defaults.context_window
    stored_window = setting_value(ctx, "LLMContextWindow")
    if stored_window and stored_window.isdigit():
        window = int(stored_window)
    config = ctx.completions_config(
        model=model,
        api_base=defaults.api_base or setting_value(ctx, "LLMApiBase"),
        api_key=defaults.api_key or setting_value(ctx, "LLMApiKey"),
        timeout=defaults.timeout,
    )
    return ResolvedLLM(config, window, model.split("/", 1)[0])


def setting_value(ctx: Context, key: str) -> str | None:
    """A provider setting: secrets from the secrets store, public ones from the read model."""
    if key in SECRET_SETTINGS:
        return ctx.content.secrets.get(key)
    return ctx.accounts.setting(f"env:{key}")
