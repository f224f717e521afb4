"""Settings from the environment. With nothing set, ledgerllm runs embedded under ./data."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import unquote, urlparse

import msgspec


class SettingsError(ValueError):
    """A setting has a value we cannot use; the message names it and says what to set."""


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    data_dir: Path = Path("./data")
    host: str = "127.0.0.1"
    port: int = 3001
    database_url: str | None = None  # postgresql://user:pass@host:port/db switches PostgreSQL on
    redis_url: str | None = None  # redis://host:port/db switches the shared cache and limits on
    # Redis is a cache: a command that takes longer than this counts as Redis being unreachable,
    # and the request goes on without it (principals from the read model).
    redis_timeout: float = 0.5
    # While Redis is unreachable, per-key rate limits are counted in each process ("local", the
    # default: a key may get up to N x its limit across N processes) or refuse with 503 ("closed").
    rate_limit_fallback: str = "local"
    jwt_secret: str | None = None  # else generated once into DATA_DIR/jwt-secret
    jwt_expiry_seconds: int = 30 * 24 * 3600
    # Signed checkpoints (`ledgerllm audit checkpoint`): who signs, with which Ed25519 key (64 hex
    # characters in CHECKPOINT_KEY, or a 0600 file, made on first use at DATA_DIR/checkpoint.key).
    checkpoint_origin: str = "ledgerllm"
    checkpoint_key: str | None = None
    checkpoint_key_file: Path | None = None
    # Crypto-shredding (infrastructure/content_keys.py): the master key that wraps each user's
    # data key: 64 hex characters, or a 0600 file; made on first use at DATA_DIR/master.key.
    content_master_key: str | None = None
    content_master_key_file: Path | None = None
    owner_username: str = "admin"
    auth_token: str | None = None  # AUTH_TOKEN: the owner's first password, as upstream
    simple_sso_enabled: bool = False
    max_body_bytes: int = 1 << 20
    auth_cache_ttl: int = 60
    login_max_attempts: int = 10
    login_window_seconds: int = 300
    projection_poll_seconds: float = 0.05
    # PostgreSQL connections of a server process, for the store and every read model together
    # (infrastructure/pg_pool.py): kept open, and opened at most under load. CLI commands: 1 and 3.
    pg_pool_size: int = 2
    pg_pool_max: int = 10
    pg_prepared_statements: bool = True  # off behind PgBouncer < 1.21 in transaction mode
    pg_role: str = "cli"  # "serve" in a server process (api/app.py); names its connections and sizes its pool
    # Readiness (GET /api/health/ready): a read model further behind the store than this many
    # events, or missing an event stored longer ago than this many seconds, is not ready.
    ready_max_lag_events: int = 1000
    ready_max_lag_seconds: float = 30.0
    log_level: str = "INFO"
    upload_max_bytes: int = 50 << 20
    link_max_bytes: int = 10 << 20
    link_timeout: float = 20.0
    link_allowlist: frozenset[str] = frozenset()  # hosts/IPs the link fetcher may reach though private
    webhook_max_attempts: int = 8  # failures in a row that park a webhook
    webhook_backoff_base_seconds: float = 1.0
    webhook_backoff_max_seconds: float = 600.0
    webhook_timeout: float = 10.0
    webhook_poll_seconds: float = 0.5
    # Proxies whose X-Forwarded-For / X-Forwarded-Proto are believed (comma-separated IPs or
    # networks, "*" for any); none by default, so a client cannot choose its own address.
    forwarded_allow_ips: str = ""
    parse_workers: int = 2  # files parsed at once, each in its own sandboxed worker process
    parse_timeout: float = 90.0  # seconds a parse may take before its worker is killed
    parse_queue_timeout: float = 10.0  # seconds a file may wait for a free worker
    parse_cpu_seconds: int = 60  # CPU seconds a worker may spend on one file
    parse_max_memory_mb: int = 1024  # a worker's address space
    parse_max_unpacked_bytes: int = 32 << 20  # bytes a file may unpack to (DOCX parts, PDF streams)
    parse_max_text_chars: int = 64 << 20  # characters of text a file may yield
    parse_max_pages: int = 2000  # pages of a PDF
    # Processes decoding events while a rebuild applies them (`ledgerllm projections rebuild`,
    # `verify`, `replay`); None: one per core but one, for a log of 20,000 events or more.
    rebuild_workers: int | None = None
    embed_model: bool = True  # load the embedding model at start (off: on first use)
    embed_backend: str = "openvino"  # or "torch" (sentence-transformers fp32); see infrastructure/embedder.py
    embed_cache_dir: Path | None = None  # where the OpenVINO model is built (default: inside the venv)
    vector_approx_threshold: int = 50_000  # chunks in a workspace from which search is approximate (0: never)
    llm_model: str | None = None  # a litellm model string: openai/<name>, ollama/<name>, ...
    llm_api_base: str | None = None
    llm_api_key: str | None = None
    llm_context_window: int = 8192
    llm_timeout: float = 120.0
    image_model: str | None = None  # a litellm image model: openai/gpt-image-1, openai/dall-e-3, ...
    image_api_base: str | None = None  # default: llm_api_base
    image_api_key: str | None = None  # default: llm_api_key
    image_size: str = "1024x1024"  # when a request names none, as upstream's IMAGE_GEN_SIZE_PREF
    read_only: bool = False  # serve the store as it is at start-up; every change is refused (403)
    feed_heartbeat_seconds: float = 15.0  # the event stream sends a comment line this often when quiet
    feed_stream_seconds: float = 3600.0  # an event stream ends after this long; the client resumes (Last-Event-ID)
    # Tests of use cases: events in memory (the library's POPO store), each view an in-memory
    # SQLite database; nothing is written under data_dir but blobs. Not settable from the environment.
    in_memory: bool = False

    @property
    def postgres(self) -> bool:
        return self.database_url is not None


def _flag(value: str) -> bool:
    if value.lower() in {"1", "true", "yes", "on"}:
        return True
    if value.lower() in {"0", "false", "no", "off"}:
        return False
    raise ValueError(value)


_ENV = {
    "DATA_DIR": ("data_dir", Path),
    "HOST": ("host", str),
    "PORT": ("port", int),
    "DATABASE_URL": ("database_url", str),
    "REDIS_URL": ("redis_url", str),
    "REDIS_TIMEOUT": ("redis_timeout", float),
    "RATE_LIMIT_FALLBACK": ("rate_limit_fallback", str),
    "JWT_SECRET": ("jwt_secret", str),
    "JWT_EXPIRY_SECONDS": ("jwt_expiry_seconds", int),
    "CHECKPOINT_ORIGIN": ("checkpoint_origin", str),
    "CHECKPOINT_KEY": ("checkpoint_key", str),
    "CHECKPOINT_KEY_FILE": ("checkpoint_key_file", Path),
    "CONTENT_MASTER_KEY": ("content_master_key", str),
    "CONTENT_MASTER_KEY_FILE": ("content_master_key_file", Path),
    "OWNER_USERNAME": ("owner_username", str),
    "AUTH_TOKEN": ("auth_token", str),
    "SIMPLE_SSO_ENABLED": ("simple_sso_enabled", lambda v: v.lower() in {"1", "true", "yes", "on"}),
    "READ_ONLY": ("read_only", lambda v: v.lower() in {"1", "true", "yes", "on"}),
    "MAX_BODY_BYTES": ("max_body_bytes", int),
    "AUTH_CACHE_TTL": ("auth_cache_ttl", int),
    "LOGIN_MAX_ATTEMPTS": ("login_max_attempts", int),
    "LOGIN_WINDOW_SECONDS": ("login_window_seconds", int),
    "PROJECTION_POLL_SECONDS": ("projection_poll_seconds", float),
    "PG_POOL_SIZE": ("pg_pool_size", int),
    "PG_POOL_MAX": ("pg_pool_max", int),
    "PG_PREPARED_STATEMENTS": ("pg_prepared_statements", _flag),
    "READY_MAX_LAG_EVENTS": ("ready_max_lag_events", int),
    "READY_MAX_LAG_SECONDS": ("ready_max_lag_seconds", float),
    "LOG_LEVEL": ("log_level", str),
    "UPLOAD_MAX_BYTES": ("upload_max_bytes", int),
    "LINK_MAX_BYTES": ("link_max_bytes", int),
    "LINK_TIMEOUT": ("link_timeout", float),
    "LLM_MODEL": ("llm_model", str),
    "LLM_API_BASE": ("llm_api_base", str),
    "LLM_API_KEY": ("llm_api_key", str),
    "LLM_CONTEXT_WINDOW": ("llm_context_window", int),
    "LLM_TIMEOUT": ("llm_timeout", float),
    "FORWARDED_ALLOW_IPS": ("forwarded_allow_ips", str),
    "EMBED_BACKEND": ("embed_backend", str),
    "EMBED_CACHE_DIR": ("embed_cache_dir", Path),
    "VECTOR_APPROX_THRESHOLD": ("vector_approx_threshold", int),
    "IMAGE_GEN_MODEL": ("image_model", str),
    "IMAGE_GEN_API_BASE": ("image_api_base", str),
    "IMAGE_GEN_API_KEY": ("image_api_key", str),
    "IMAGE_GEN_SIZE": ("image_size", str),
    "PARSE_WORKERS": ("parse_workers", int),
    "REBUILD_WORKERS": ("rebuild_workers", int),
    "PARSE_TIMEOUT": ("parse_timeout", float),
    "PARSE_QUEUE_TIMEOUT": ("parse_queue_timeout", float),
    "PARSE_CPU_SECONDS": ("parse_cpu_seconds", int),
    "PARSE_MAX_MEMORY_MB": ("parse_max_memory_mb", int),
    "PARSE_MAX_UNPACKED_BYTES": ("parse_max_unpacked_bytes", int),
    "PARSE_MAX_TEXT_CHARS": ("parse_max_text_chars", int),
    "PARSE_MAX_PAGES": ("parse_max_pages", int),
    "FEED_HEARTBEAT_SECONDS": ("feed_heartbeat_seconds", float),
    "FEED_STREAM_SECONDS": ("feed_stream_seconds", float),
    "WEBHOOK_MAX_ATTEMPTS": ("webhook_max_attempts", int),
    "WEBHOOK_BACKOFF_BASE_SECONDS": ("webhook_backoff_base_seconds", float),
    "WEBHOOK_BACKOFF_MAX_SECONDS": ("webhook_backoff_max_seconds", float),
    "WEBHOOK_TIMEOUT": ("webhook_timeout", float),
    "WEBHOOK_POLL_SECONDS": ("webhook_poll_seconds", float),
    "LINK_ALLOWLIST": ("link_allowlist", lambda v: frozenset(h.strip() for h in v.split(",") if h.strip())),
}


def load_settings(environ: dict[str, str] | None = None, **overrides: object) -> Settings:
    """Read the settings from `environ` (default: os.environ); keyword overrides win."""
    environ = os.environ if environ is None else environ
    values: dict[str, object] = {}
    for name, (field, parse) in _ENV.items():
        raw = environ.get(name)
        if raw is None or raw == "":
            continue
        try:
            values[field] = parse(raw)
        except ValueError:
            raise SettingsError(f"{name}={raw!r} is not valid; unset it or give a proper value.") from None
    values.update(overrides)
    settings = Settings(**values)  # type: ignore[arg-type]
    if settings.embed_backend not in ("openvino", "torch"):
        raise SettingsError(f"EMBED_BACKEND={settings.embed_backend!r} is not valid; use openvino (default) or torch.")
    if settings.rate_limit_fallback not in ("local", "closed"):
        raise SettingsError(f"RATE_LIMIT_FALLBACK={settings.rate_limit_fallback!r} is not valid; use local (default) or closed.")
    if not 0 < settings.redis_timeout <= 30:
        raise SettingsError("REDIS_TIMEOUT must be between 0 and 30 seconds (default 0.5).")
    if not 0 < settings.feed_heartbeat_seconds <= 3600 or not 0 < settings.feed_stream_seconds:
        raise SettingsError("FEED_HEARTBEAT_SECONDS must be between 0 and 3600 and FEED_STREAM_SECONDS above 0.")
    if not 1 <= settings.pg_pool_size <= settings.pg_pool_max <= 100:
        raise SettingsError("PG_POOL_SIZE and PG_POOL_MAX must satisfy 1 <= PG_POOL_SIZE <= PG_POOL_MAX <= 100 "
                            "(defaults 2 and 10).")
    if settings.ready_max_lag_events < 0 or not settings.ready_max_lag_seconds > 0:
        raise SettingsError("READY_MAX_LAG_EVENTS must be >= 0 (default 1000) and READY_MAX_LAG_SECONDS above 0 "
                            "(default 30).")
    if not (1 <= settings.webhook_max_attempts <= 1000 and 0 < settings.webhook_backoff_base_seconds
            <= settings.webhook_backoff_max_seconds and 0 < settings.webhook_timeout <= 300
            and 0 < settings.webhook_poll_seconds <= 60):
        raise SettingsError("WEBHOOK_MAX_ATTEMPTS must be 1 to 1000, 0 < WEBHOOK_BACKOFF_BASE_SECONDS <= "
                            "WEBHOOK_BACKOFF_MAX_SECONDS, WEBHOOK_TIMEOUT 0 to 300, WEBHOOK_POLL_SECONDS 0 to 60.")
    if settings.rebuild_workers is not None and not 0 <= settings.rebuild_workers <= 64:
        raise SettingsError("REBUILD_WORKERS must be 0 to 64 (0: a rebuild decodes its events itself; unset: one "
                            "per core but one).")
    if settings.vector_approx_threshold < 0:
        raise SettingsError("VECTOR_APPROX_THRESHOLD must be >= 0 (0: always exact search).")
    if settings.database_url and not settings.database_url.startswith(("postgresql://", "postgres://")):
        raise SettingsError("DATABASE_URL must start with postgresql:// (or leave it unset for SQLite).")
    if not settings.read_only and not settings.database_url and (settings.data_dir / REPLAY_MARK).exists():
        # A replay made by `ledgerllm replay` shows a past moment: nothing may be added to it,
        # whether by a server started without --read-only or by a CLI command.
        settings = msgspec.structs.replace(settings, read_only=True)
    return settings


REPLAY_MARK = "replay.json"


def postgres_env(url: str) -> dict[str, str]:
    """Split DATABASE_URL into the POSTGRES_* variables eventsourcing reads (it has no DSN)."""
    parsed = urlparse(url)
    if not parsed.path.strip("/"):
        raise SettingsError("DATABASE_URL needs a database name, e.g. postgresql://user@host:5432/ledgerllm")
    return {
        "POSTGRES_DBNAME": unquote(parsed.path.lstrip("/")),
        "POSTGRES_HOST": parsed.hostname or "127.0.0.1",
        "POSTGRES_PORT": str(parsed.port or 5432),
        "POSTGRES_USER": unquote(parsed.username or "postgres"),
        "POSTGRES_PASSWORD": unquote(parsed.password or ""),
        "POSTGRES_CONNECT_TIMEOUT": "10",
    }
