"""Image generation (POST /v1/openai/images/generations): a prompt, an optional size and
optional reference images in; image bytes out, from the configured provider.

Nothing is stored: generating an image changes no state, so it records no event (upstream
keeps a copy on disk; here the caller gets the only one)."""

from __future__ import annotations

import uuid
import msgspec

from application.access import check_scope
from application.ledger import Command, Context
from application.ports import ImageGenerator
from domain.errors import DomainError, InvalidInput
from domain.principal import Scope

MAX_PROMPT = 32_000


class ImageProviderError(Exception):
    """Raised by the port when the provider refused or failed; `message` is safe to show."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.message, self.status = message, status


class ImagesNotConfigured(DomainError):
    def __init__(self) -> None:
        super().__init__("No valid image generation provider was set. Set IMAGE_GEN_MODEL (a litellm model "
                         "string such as openai/gpt-image-1), with IMAGE_GEN_API_BASE and IMAGE_GEN_API_KEY "
                         "as the provider needs.")


class ImageGenerationFailed(DomainError):
    """The provider refused the request (its 4xx: 400 here) or failed (502)."""

    def __init__(self, message: str, provider_status: int | None) -> None:
        super().__init__(f"Image generation failed: {message}")
        self.status = 400 if provider_status is not None and 400 <= provider_status < 500 else 502


class GenerateImage(Command, frozen=True, kw_only=True):
    prompt: str
    size: str | None = None
    references: tuple[bytes, ...] = ()


class GeneratedImage(msgspec.Struct, frozen=True):
    image: bytes
    storage_filename: str  # upstream's name shape: img-<uuid>.png


def generate_image(ctx: Context, cmd: GenerateImage) -> GeneratedImage:
    check_scope(cmd.principal, Scope.CHAT)
    if not cmd.prompt.strip():
        raise InvalidInput("A prompt is required.")
    if len(cmd.prompt) > MAX_PROMPT:
        raise InvalidInput(f"The prompt must be at most {MAX_PROMPT} characters.")
    images: ImageGenerator | None = ctx.images
    if images is None or not images.configured:
        raise ImagesNotConfigured()
    try:
        data = images.generate(cmd.prompt, cmd.size, list(cmd.references))
    except ImageProviderError as e:
        raise ImageGenerationFailed(e.message, e.status) from None
    return GeneratedImage(data, f"img-{uuid.uuid4()}.png")
