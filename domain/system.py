"""The System aggregate: instance-wide switches (multi-user mode) and preferences."""

from __future__ import annotations

from uuid import NAMESPACE_URL, uuid5

from domain.audited import Audited
from domain.errors import Conflict
from domain.principal import Actor

SYSTEM_ID = uuid5(NAMESPACE_URL, "ledgerllm:/system")

# Preference labels AnythingLLM accepts on POST /v1/admin/preferences; unknown labels are dropped.
PREFERENCE_LABELS = frozenset(
    {
        "support_email", "footer_data", "custom_app_name", "meta_page_title", "meta_page_favicon",
        "text_splitter_chunk_size", "text_splitter_chunk_overlap", "default_system_prompt",
        "limit_user_messages", "message_limit", "logo_filename", "telemetry_id",
        "agent_search_provider", "agent_sql_connections", "default_agent_skills",
        "disabled_agent_skills", "imported_agent_skills", "max_embed_chunk_size",
        "feature_flags", "meta_page_favicon", "disable_view_chat_history",
    }
)
# What a manager may change (reference §3.5); admins may change every label.
MANAGER_PREFERENCE_LABELS = frozenset(
    {"custom_app_name", "footer_data", "support_email", "meta_page_title", "meta_page_favicon"}
)


class System(Audited):
    class Installed(Audited.Created):
        owner_user_id: int

        def apply(self, system: System) -> None:
            system.owner_user_id = self.owner_user_id
            system.multi_user_mode = False

    class MultiUserModeEnabled(Audited.Event):
        def apply(self, system: System) -> None:
            system.multi_user_mode = True

    class PreferencesUpdated(Audited.Event):
        values: dict[str, str | None]

        def apply(self, system: System) -> None:
            pass


    class SettingsChanged(Audited.Event):
        """Provider settings: plain values for public ones; for secrets only which changed."""

        values: dict[str, str | None]
        secret_keys: tuple[str, ...]

        def apply(self, system: System) -> None:
            pass

    @classmethod
    def install(cls, actor: Actor, owner_user_id: int) -> System:
        return cls._create(cls.Installed, id=SYSTEM_ID, **actor.stamp(), owner_user_id=owner_user_id)

    def enable_multi_user_mode(self, actor: Actor) -> None:
        if self.multi_user_mode:
            raise Conflict("Multi-user mode is already enabled.")
        self._record(self.MultiUserModeEnabled, actor)

    def update_preferences(self, actor: Actor, values: dict[str, str | None]) -> dict[str, str | None]:
        known = {k: v for k, v in values.items() if k in PREFERENCE_LABELS}
        if known:
            self._record(self.PreferencesUpdated, actor, values=known)
        return known

    def change_settings(self, actor: Actor, values: dict[str, str | None], secret_keys: list[str]) -> None:
        if values or secret_keys:
            self._record(self.SettingsChanged, actor, values=values, secret_keys=tuple(sorted(secret_keys)))


# Settings POST /v1/system/update-env accepts (upstream's KEY_MAPPING names we act on).
PUBLIC_SETTINGS = frozenset({
    "LLMProvider", "LLMModel", "LLMApiBase", "LLMContextWindow", "OpenAiModelPref", "GenericOpenAiBasePath",
    "GenericOpenAiModelPref", "GenericOpenAiTokenLimit", "OllamaLLMBasePath", "OllamaLLMModelPref",
    "OllamaLLMTokenLimit", "LMStudioBasePath", "LMStudioModelPref", "LMStudioTokenLimit", "AnthropicModelPref",
    "EmbeddingEngine", "EmbeddingModelPref", "VectorDB", "TextSplitterChunkSize", "TextSplitterChunkOverlap",
})
SECRET_SETTINGS = frozenset({
    "LLMApiKey", "OpenAiKey", "GenericOpenAiKey", "AnthropicApiKey", "AzureOpenAiKey", "GeminiLLMApiKey",
    "GroqApiKey", "MistralApiKey", "OpenRouterApiKey", "TogetherAiApiKey", "DeepSeekApiKey", "XAIApiKey",
})
FORBIDDEN_SETTINGS = frozenset({"AuthToken", "JWTSecret"})
