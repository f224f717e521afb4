"""Documents and folders. A document is stored once (its bytes and its text are blobs named by
their SHA-256) and known by its docpath `folder/name-uuid.json`, as AnythingLLM has it."""

from __future__ import annotations

import re
import unicodedata
from uuid import NAMESPACE_URL, UUID, uuid5

from domain.audited import Audited
from domain.errors import Conflict, InvalidInput
from domain.principal import Actor

DEFAULT_FOLDER = "custom-documents"
FOLDER_MAX = 100
_FOLDER_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._-]*$")
METADATA_KEYS = ("url", "title", "docAuthor", "description", "docSource", "chunkSource", "published")


def clean_name(name: str, what: str) -> str:
    """A folder or document name as it is stored and looked up: NFKC (so look-alikes such as a
    full-width space become what they look like), trimmed; control and format characters
    (bidi overrides, zero-width marks) are refused rather than kept invisible in a name."""
    name = unicodedata.normalize("NFKC", name).strip()
    if any(unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Zl", "Zp") for ch in name):
        raise InvalidInput(f"Invalid {what}: control, bidi and zero-width characters are not allowed.")
    return name


def check_folder(name: object) -> str:
    """Folder names are one path segment: no separators, no dots-only names, no NUL."""
    if not isinstance(name, str) or not name.strip():
        raise InvalidInput("Folder name is required.")
    name = clean_name(name, "folder name")
    if len(name) > FOLDER_MAX or not _FOLDER_RE.match(name) or ".." in name:
        raise InvalidInput("Invalid folder name: use letters, digits, spaces, '.', '_' and '-' only.")
    return name


def split_docpath(docpath: object) -> tuple[str, str]:
    """(folder, file name) of `folder/name.json`, both as `clean_name` makes them."""
    if not isinstance(docpath, str) or docpath.count("/") != 1:
        raise InvalidInput(f"Invalid document path {docpath!r}: expected folder/name.json")
    folder, name = docpath.split("/")
    folder = check_folder(folder)
    name = clean_name(name, "document name")
    if not name or name in (".", "..") or "\\" in name:
        raise InvalidInput(f"Invalid document path {docpath!r}")
    return folder, name


def folder_uuid(name: str) -> UUID:
    return uuid5(NAMESPACE_URL, f"ledgerllm:/folders/{name}")


class Folder(Audited):
    class Created(Audited.Created):
        name: str

        def apply(self, folder: Folder) -> None:
            folder.name = self.name
            folder.removed = False

    class Removed(Audited.Event):
        name: str

        def apply(self, folder: Folder) -> None:
            folder.removed = True

    class Restored(Audited.Event):
        name: str

        def apply(self, folder: Folder) -> None:
            folder.removed = False

    @classmethod
    def create(cls, actor: Actor, name: str) -> Folder:
        return cls._create(cls.Created, id=folder_uuid(check_folder(name)), **actor.stamp(), name=name)

    def restore(self, actor: Actor) -> None:
        if not self.removed:
            raise Conflict("Folder by that name already exists")
        self._record(self.Restored, actor, name=self.name)

    def remove(self, actor: Actor) -> bool:
        if self.removed:
            return False
        self._record(self.Removed, actor, name=self.name)
        return True


class Document(Audited):
    class Uploaded(Audited.Created):
        """What was stored, by whom: hashes, names, metadata. Never the text or the vectors."""

        document_id: str
        folder: str
        filename: str  # name-uuid.json, as upstream names the parsed document
        original_name: str
        source: str  # upload | link | raw-text
        mime: str
        content_hash: str  # blob of the original bytes
        text_hash: str  # blob of the extracted text
        size: int
        word_count: int
        token_count: int
        metadata: dict[str, str]

        def apply(self, doc: Document) -> None:
            doc.document_id, doc.folder, doc.filename = self.document_id, self.folder, self.filename
            doc.text_hash = self.text_hash
            doc.deleted = False

    class Moved(Audited.Event):
        folder: str

        def apply(self, doc: Document) -> None:
            doc.folder = self.folder

    class Deleted(Audited.Event):
        def apply(self, doc: Document) -> None:
            doc.deleted = True

    @property
    def docpath(self) -> str:
        return f"{self.folder}/{self.filename}"

    @classmethod
    def upload(cls, actor: Actor, document_id: str, folder: str, original_name: str, source: str, mime: str,
               content_hash: str, text_hash: str, size: int, word_count: int, token_count: int,
               metadata: dict[str, str]) -> Document:
        stem = re.sub(r"[^A-Za-z0-9._-]+", "-", original_name)[:120].strip("-.") or "document"
        return cls._create(
            cls.Uploaded, id=UUID(document_id), **actor.stamp(), document_id=document_id,
            folder=check_folder(folder), filename=f"{stem}-{document_id}.json", original_name=original_name,
            source=source, mime=mime, content_hash=content_hash, text_hash=text_hash, size=size,
            word_count=word_count, token_count=token_count, metadata=metadata,
        )

    def move(self, actor: Actor, folder: str) -> bool:
        folder = check_folder(folder)
        if folder == self.folder:
            return False
        self._record(self.Moved, actor, folder=folder)
        return True

    def delete(self, actor: Actor) -> bool:
        if self.deleted:
            return False
        self._record(self.Deleted, actor)
        return True
