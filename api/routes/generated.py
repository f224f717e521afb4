"""GET /api/v1/document/generated-files/{filename}: download a file from DATA_DIR/generated/.

Upstream serves files its agent skills wrote; here the folder holds whatever the operator or
another tool put there. Names must look like upstream's storage names (`<type>-<uuid>.<ext>`,
e.g. `pdf-e9e14f28-d6b6-4f49-91a0-dd331517f567.pdf`), which contain no path separator, so a
request can never reach outside the folder; the resolved path is checked as well."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated

from litestar import Controller, Request, get
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import Parameter
from litestar.response import File

from api.auth import requires_scope
from api.errors import ErrorBody, raises
from domain.errors import InvalidInput, NotFound

GENERATED_DIR = "generated"
# Upstream's storage-name rule (create-files/lib.js parseFilename), ASCII only.
STORAGE_NAME = re.compile(r"([a-z]+)-([a-f0-9-]{36})\.(\w+)", re.IGNORECASE | re.ASCII)
# Upstream's table (create-files/lib.js getMimeType); anything else is application/octet-stream.
MIME_TYPES = {
    "pptx": "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "pdf": "application/pdf", "txt": "text/plain", "csv": "text/csv", "json": "application/json",
    "html": "text/html", "xml": "application/xml", "zip": "application/zip", "png": "image/png",
    "jpg": "image/jpeg", "jpeg": "image/jpeg", "gif": "image/gif", "svg": "image/svg+xml",
    "mp3": "audio/mpeg", "mp4": "video/mp4", "webm": "video/webm",
}
Filename = Annotated[str, Parameter(description="a storage name such as pdf-<uuid>.pdf", max_length=255)]

RESPONSES = {
    200: ResponseSpec(bytes, media_type="*/*", generate_examples=False,
                      description="The file, as an attachment; its type follows the extension"),
    400: ResponseSpec(ErrorBody, generate_examples=False,
                      description="Filename is required / Invalid filename format"),
    404: ResponseSpec(ErrorBody, generate_examples=False, description="File not found"),
}


def generated_path(root: Path, filename: str) -> Path | None:
    """The file's path under `root` if the name is a valid storage name and the file exists."""
    if not STORAGE_NAME.fullmatch(filename):
        return None
    path = (root / filename).resolve()
    if not path.is_relative_to(root.resolve()) or not path.is_file():
        return None
    return path


class GeneratedFilesController(Controller):
    path = "/document/generated-files"
    tags = ["Documents"]
    guards = [requires_scope("read")]

    @get("/{filename:str}", operation_id="v1GeneratedFile", sync_to_thread=True, responses=RESPONSES,
         opt=raises(NotFound))
    def download(self, request: Request, filename: Filename) -> File:
        """Download a generated file by its storage name (`attachment`, MIME type by extension)."""
        if not filename.strip():
            raise InvalidInput("Filename is required")
        match = STORAGE_NAME.fullmatch(filename)
        if match is None:
            raise InvalidInput("Invalid filename format")
        root = request.app.state.runtime.settings.data_dir / GENERATED_DIR
        path = generated_path(root, filename)
        if path is None:
            raise NotFound("File not found")
        return File(path, filename=filename, media_type=MIME_TYPES.get(match.group(3).lower(),
                                                                       "application/octet-stream"),
                    content_disposition_type="attachment")
