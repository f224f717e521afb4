"""Provider failures as safe `CompletionError`s: a kind, the HTTP status when there was one,
and a short message scrubbed of API keys, bearer tokens and `sk-` keys."""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

from infrastructure.llm_types import CompletionError, LLMConfig, load_litellm

if TYPE_CHECKING:  # pragma: no cover
    import httpx

# --- errors ------------------------------------------------------------------------------

_MAX_MESSAGE = 400
_BEARER = re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=\-]+")
_SK_KEY = re.compile(r"\bsk-[A-Za-z0-9_\-]{6,}")
_KEY_PARAM = re.compile(
    r"(?i)(\b(?:api[_-]?key|x-api-key|access[_-]?token|auth[_-]?token|secret)[\"']?\s*[:=]\s*[\"']?)"
    r"[^\s\"'&,}]+"
)
_URL_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://)[^/@\s]+@")
_LITELLM_PREFIX = re.compile(r"^(?:litellm\.\w+:\s*)?(?:\w+Error:\s*)?(?:\w+Exception\s*-\s*)?")


def scrub(text: str, api_key: str | None) -> str:
    if api_key and len(api_key) >= 4:
        text = text.replace(api_key, "[redacted]")
    text = _BEARER.sub(lambda m: f"{m.group(1)} [redacted]", text)
    text = _SK_KEY.sub("sk-[redacted]", text)
    text = _URL_USERINFO.sub(lambda m: f"{m.group(1)}[redacted]@", text)
    return _KEY_PARAM.sub(lambda m: f"{m.group(1)}[redacted]", text)


def safe_model(config: LLMConfig) -> str:
    return scrub(config.model, config.api_key)


def _chain(e: BaseException) -> list[BaseException]:
    out: list[BaseException] = []
    seen: set[int] = set()
    cur: BaseException | None = e
    while cur is not None and id(cur) not in seen and len(out) < 12:
        seen.add(id(cur))
        out.append(cur)
        cur = cur.__cause__ or cur.__context__
    return out


def _provider_text(e: BaseException) -> str:
    """The provider's own words, without litellm's ``litellm.XError: XError: OpenAIException -``
    prefixes and without its long tails (original exception dumps, help links)."""
    text = getattr(e, "message", None)
    if not isinstance(text, str) or not text:
        text = str(e)
    text = text.strip()
    for _ in range(4):  # "litellm.MidStreamFallbackError: litellm.APIConnectionError: ..." nests
        stripped = _LITELLM_PREFIX.sub("", text, count=1)
        if stripped == text:
            break
        text = stripped
    for marker in (" Original exception:", "Original exception", " LiteLLM Retried:", "\nReceived Model Group",
                   " Received Model Group", "Give Feedback / Get Help"):
        cut = text.find(marker)
        if cut > 0:
            text = text[:cut]
    text = " ".join(text.split())
    if text.startswith("{"):  # a raw JSON error body: keep its message
        try:
            body = json.loads(text)
            inner = body.get("error", body) if isinstance(body, dict) else None
            message = inner.get("message") if isinstance(inner, dict) else inner
            if isinstance(message, str) and message:
                text = message
        except ValueError:
            pass
    return text


def map_error(e: BaseException, config: LLMConfig) -> CompletionError:
    """A litellm (or SDK, or httpx) exception as a CompletionError with a safe message."""
    import httpx
    import openai

    litellm = load_litellm()
    model = safe_model(config)
    chain = _chain(e)
    # litellm wraps a mid-stream failure in MidStreamFallbackError; look at what it wraps.
    original = getattr(e, "original_exception", None)
    if isinstance(original, BaseException):
        chain = _chain(original) + chain

    def done(message: str, kind: str, status: int | None = None) -> CompletionError:
        message = scrub(message, config.api_key)
        if len(message) > _MAX_MESSAGE:
            message = message[: _MAX_MESSAGE - 1] + "…"
        return CompletionError(message, kind, status)

    if any(isinstance(x, litellm.Timeout | openai.APITimeoutError | httpx.TimeoutException | TimeoutError)
           for x in chain):
        return done(f"The LLM ({model}) did not answer within {config.timeout:g} s.", "timeout")

    # The provider's HTTP status, only from a response that came off the wire: litellm
    # invents 500 responses for local failures (connection refused, missing credentials).
    wire = next((x for x in chain if _wire_response(x) is not None), None)
    status = _wire_response(wire).status_code if wire is not None else None
    detail = _provider_text(original if isinstance(original, BaseException) else e)

    if status is not None:
        label = _STATUS_LABELS.get(status) or ("The LLM provider failed" if status >= 500
                                               else "The LLM provider refused the request")
        return done(f"{label} (HTTP {status}, {model}): {detail}", "provider", status)

    connection = next((x for x in chain if isinstance(
        x, litellm.APIConnectionError | openai.APIConnectionError | httpx.TransportError | ConnectionError)), None)
    if connection is not None:
        where = scrub(config.api_base, config.api_key) if config.api_base else "the provider's default endpoint"
        cause = next((x for x in chain if isinstance(x, httpx.TransportError | ConnectionError)), None)
        why = _provider_text(cause) if cause is not None else detail
        return done(f"The connection to the LLM ({model}) at {where} failed: {why}", "provider")

    if any(isinstance(x, openai.OpenAIError) and not isinstance(x, openai.APIError) for x in chain) \
            and re.search(r"(?i)api[_ ]?key|credential", detail):
        return done(f"The LLM ({model}) needs an API key and none is configured: {detail}", "config")
    if "LLM Provider NOT provided" in detail:
        return done(f"Unknown LLM model {model!r}: use a litellm model string with its provider.", "config")
    return done(f"The LLM call failed ({model}): {detail}", "provider")


def _wire_response(e: BaseException | None) -> Any:
    """The httpx.Response an exception carries, if it was read from the network (httpcore
    marks those with an ``http_version`` extension)."""
    response = getattr(e, "response", None)
    try:
        return response if response is not None and response.extensions.get("http_version") else None
    except Exception:  # noqa: BLE001
        return None


_STATUS_LABELS = {
    400: "The LLM provider rejected the request",
    401: "The LLM provider rejected the API key",
    403: "The LLM provider denied access",
    404: "The LLM provider does not know this model or endpoint",
    408: "The LLM provider timed out",
    413: "The request is too large for the LLM provider",
    422: "The LLM provider could not process the request",
    429: "The LLM provider is rate limiting or out of quota",
    500: "The LLM provider failed",
    502: "The LLM provider's gateway failed",
    503: "The LLM provider is unavailable",
    504: "The LLM provider's gateway timed out",
}
