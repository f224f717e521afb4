"""The image-generation port adapter: litellm's `image_generation` (and `image_edit` when
reference images are given) against the configured model (IMAGE_GEN_MODEL, a litellm model
string such as openai/gpt-image-1), returning the image bytes.

litellm is imported on the first call. Failures become `ImageError` with the provider's status
when it answered and a message scrubbed of keys. litellm keeps the OpenAI SDK's own retries of
a 5xx for images (its image call takes no retry setting), as upstream's SDK client does. A provider that answers with a URL instead of
base64 data is followed once, with the same timeout and a size cap."""

from __future__ import annotations

import base64
from typing import Any

import msgspec

from infrastructure.completions import scrub, load_litellm

MAX_IMAGE_BYTES = 25 << 20


class ImageError(Exception):
    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.message, self.status = message, status


class ImageConfig(msgspec.Struct, frozen=True):
    model: str | None
    api_base: str | None
    api_key: str | None
    size: str
    timeout: float


class LiteLLMImages:
    """`generate(prompt, size, references)` -> PNG (or whatever the provider made) bytes."""

    def __init__(self, config: ImageConfig) -> None:
        self.config = config

    @property
    def configured(self) -> bool:
        return bool(self.config.model)

    def generate(self, prompt: str, size: str | None, references: list[bytes]) -> bytes:
        litellm = load_litellm()
        c = self.config
        common: dict[str, Any] = {"model": c.model, "prompt": prompt, "size": size or c.size, "n": 1,
                                  "api_base": c.api_base, "api_key": c.api_key, "timeout": c.timeout}
        try:
            if references:
                result = litellm.image_edit(image=references if len(references) > 1 else references[0], **common)
            else:
                result = litellm.image_generation(**common)
        except Exception as e:  # noqa: BLE001 - every litellm/provider failure becomes ImageError
            status = getattr(e, "status_code", None)
            raise ImageError(scrub(str(getattr(e, "message", e))[:500], c.api_key),
                             status if isinstance(status, int) else None) from None
        return self._image_bytes(result)

    def _image_bytes(self, result: Any) -> bytes:
        data = getattr(result, "data", None) or []
        image = data[0] if data else None
        b64 = getattr(image, "b64_json", None) if image is not None else None
        if b64:
            try:
                return base64.b64decode(b64, validate=False)
            except ValueError:
                raise ImageError("Image provider returned invalid base64 data.") from None
        url = getattr(image, "url", None) if image is not None else None
        if url:
            return self._fetch(url)
        raise ImageError("Image provider returned no image data.")

    def _fetch(self, url: str) -> bytes:
        import httpx

        try:
            with httpx.stream("GET", url, timeout=self.config.timeout) as response:
                if response.status_code != 200:
                    raise ImageError(f"Failed to fetch generated image: {response.status_code}")
                chunks, size = [], 0
                for chunk in response.iter_bytes():
                    size += len(chunk)
                    if size > MAX_IMAGE_BYTES:
                        raise ImageError("Generated image is larger than 25 MB.")
                    chunks.append(chunk)
                return b"".join(chunks)
        except httpx.HTTPError as e:
            raise ImageError(f"Failed to fetch generated image: {type(e).__name__}") from None
