"""POST /api/v1/openai/images/generations: an image from the configured provider.

As upstream, the fields (`prompt`, `size`, `response_format`) come as multipart form data,
with optional `image_references` files (then the provider's edit endpoint is used); JSON bodies
are taken too, as OpenAI SDKs send them. The answer is `{"data": [{"b64_json": ...}]}` (plus
OpenAI's `created`), or with `response_format: blob` the PNG bytes themselves."""

from __future__ import annotations

import base64
import time
from dataclasses import dataclass
from typing import Annotated, Literal

import anyio
import msgspec
from litestar import Controller, Request, Response, post
from litestar.datastructures import UploadFile
from litestar.exceptions import ClientException, ValidationException
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import OpenAPIMediaType, Operation, RequestBody
from msgspec import Meta

from api.errors import ErrorBody
from api.presenters import request_id
from application import images
from application.ledger import Context

MAX_REFERENCES = 10
FORMS = ("multipart/form-data", "application/x-www-form-urlencoded")
MAX_REFERENCE_BYTES = 25 << 20


class ImageBody(msgspec.Struct):
    prompt: Annotated[str, Meta(max_length=images.MAX_PROMPT, description="What to draw, or the edit to make")]
    size: Annotated[str, Meta(pattern=r"^(auto|\d{2,5}x\d{2,5})$", description="e.g. 1024x1024")] | None = None
    response_format: Literal["b64_json", "blob"] = "b64_json"
    model: Annotated[str, Meta(max_length=200, description="ignored: the configured model is used")] | None = None
    n: Annotated[int, Meta(ge=1, le=10, description="ignored: one image per request, as upstream")] | None = None


class ImageData(msgspec.Struct):
    b64_json: str


class ImagesOut(msgspec.Struct, omit_defaults=True):
    data: list[ImageData]
    created: int
    notice: str | None = None


JsonSchema = dict[str, object]


def _body_schemas() -> tuple[JsonSchema, JsonSchema]:
    """The JSON schema of ImageBody, and the same with `image_references` files for multipart."""
    body = msgspec.json.schema(ImageBody)["$defs"]["ImageBody"]
    body.pop("title", None)
    files = {"type": "array", "maxItems": MAX_REFERENCES, "items": {"type": "string", "format": "binary"},
             "description": "reference images (image/*) to edit"}
    return body, {**body, "properties": {**body["properties"], "image_references": files}}


@dataclass
class ImagesOperation(Operation):
    """Documents both request encodings and the PNG answer of `response_format: blob`."""

    def __post_init__(self) -> None:
        as_json, as_form = _body_schemas()
        self.request_body = RequestBody(required=True, content={
            "multipart/form-data": OpenAPIMediaType(schema=as_form),  # type: ignore[arg-type]
            "application/json": OpenAPIMediaType(schema=as_json),  # type: ignore[arg-type]
            "application/x-www-form-urlencoded": OpenAPIMediaType(schema=as_json),  # type: ignore[arg-type]
        })
        ok = (self.responses or {}).get("200")
        if ok is not None and not isinstance(ok, dict) and getattr(ok, "content", None) is not None:
            ok.content["image/png"] = OpenAPIMediaType(schema={"type": "string", "format": "binary"})  # type: ignore


RESPONSES = {
    400: ResponseSpec(ErrorBody, generate_examples=False, description="A prompt is required / invalid field / "
                      "no image generation provider is configured / the provider refused the request"),
    502: ResponseSpec(ErrorBody, generate_examples=False, description="The image provider failed"),
}


async def _read_body(request: Request) -> tuple[ImageBody, list[bytes]]:
    """The request and its reference images, from form data (multipart or urlencoded) or JSON."""
    if request.content_type[0] in FORMS:
        form = await request.form()
        fields = {k: v for k, v in form.items() if isinstance(v, str)}
        files = [v for k, v in form.multi_items() if k == "image_references" and isinstance(v, UploadFile)]
        if len(files) > MAX_REFERENCES:
            raise ClientException(f"At most {MAX_REFERENCES} image_references are allowed.")
        references = []
        for f in files:
            if not (f.content_type or "").startswith("image/"):
                raise ClientException("Invalid image upload. Only image uploads are allowed.")
            references.append(await f.read())
        return _parse(fields), references
    try:
        raw = msgspec.json.decode(await request.body())
    except msgspec.DecodeError:
        raise ClientException("The request body is not valid JSON.") from None
    if not isinstance(raw, dict):
        raise ClientException("The request body must be a JSON object.")
    return _parse(raw), []


def _parse(fields: object) -> ImageBody:
    """The request's fields (a JSON object, or form fields, all text) as an ImageBody."""
    n = fields.get("n") if isinstance(fields, dict) else None
    if isinstance(fields, dict) and isinstance(n, str) and n.isdigit():
        fields = {**fields, "n": int(n)}
    try:
        return msgspec.convert(fields, ImageBody)
    except msgspec.ValidationError as e:
        raise ValidationException(f"Invalid image request: {e}") from None


class ImagesController(Controller):
    path = "/openai/images"
    tags = ["OpenAI Compatible Endpoints"]

    @post("/generations", operation_id="v1OpenAiImagesGenerations", status_code=200, responses=RESPONSES,
          operation_class=ImagesOperation, request_max_body_size=MAX_REFERENCES * MAX_REFERENCE_BYTES)
    async def generate(self, ctx: Context, request: Request) -> ImagesOut:
        """Generate (or, with `image_references`, edit) one image with the configured provider."""
        body, references = await _read_body(request)
        made = await anyio.to_thread.run_sync(lambda: images.generate_image(ctx, images.GenerateImage(
            principal=request.user, correlation_id=request_id(request), prompt=body.prompt, size=body.size,
            references=tuple(references))))
        if body.response_format == "blob":
            return Response(made.image, media_type="image/png",  # type: ignore[return-value]
                            headers={"Content-Disposition": f'inline; filename="{made.storage_filename}"'})
        return ImagesOut([ImageData(base64.b64encode(made.image).decode())], int(time.time()))
