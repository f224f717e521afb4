"""The Workspace aggregate: settings, members and the documents embedded in it, and the
WorkspaceDirectory that keeps slugs unique."""

from __future__ import annotations

import re
import unicodedata
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid4, uuid5

import msgspec

from domain.audited import Audited
from domain.errors import Conflict, InvalidInput, NotFound
from domain.principal import Actor
from domain.slug_charmap import CHAR_MAP

DEFAULT_PROMPT = (
    "Given the following conversation, relevant context, and a follow up question, reply with an answer "
    "to the current question the user is asking. Return only your response to the question given the "
    "above information following the users instructions as needed."
)
CHAT_MODES = ("chat", "query", "automatic")
SEARCH_MODES = ("default", "rerank")
NAME_MAX = 255
TEXT_MAX = 100_000
MAX_TOP_N = 200
MAX_HISTORY = 1000

# Writable settings with upstream's defaults for a new workspace (chatMode: the API creates
# `automatic`, the database default is `chat`).
DEFAULTS: dict[str, Any] = {
    "openAiTemp": None, "openAiHistory": 20, "openAiPrompt": None, "similarityThreshold": 0.25,
    "chatProvider": None, "chatModel": None, "topN": 4, "chatMode": "automatic", "pfpFilename": None,
    "agentProvider": None, "agentModel": None, "queryRefusalResponse": None, "vectorSearchMode": "default",
    "router_id": None,
}


def workspace_uuid(workspace_id: int) -> UUID:
    return uuid5(NAMESPACE_URL, f"ledgerllm:/workspaces/{workspace_id}")


# AnythingLLM's Workspace.slugify: npm slugify 1.6 with `{lower: true}`, its character map
# extended so that slugs stay safe in URLs and vector-store namespaces.
_SLUG_EXTRA = {"+": " plus ", "!": " bang ", "@": " at ", "*": " splat ", ".": " dot ", ":": "", "~": "",
               "(": "", ")": "", "'": "", '"': "", "|": ""}
_SLUG_MAP = {**CHAR_MAP, **_SLUG_EXTRA}
_JS_SPACE = "\t\n\v\f\r \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"  # JavaScript's \\s
_SLUG_REMOVE = re.compile(f"[^A-Za-z0-9_{_JS_SPACE}$*+~.()'\"!\\-:@]+")
_SLUG_SPACES = re.compile(f"[{_JS_SPACE}]+")
SLUG_MAX = 200  # what the slug path parameters accept
_JS_CHARS = "\t\n\v\f\r \u00a0\u1680" + "".join(map(chr, range(0x2000, 0x200B))) + "\u2028\u2029\u202f\u205f\u3000\ufeff"


def slugify(name: str) -> str:
    """The slug upstream makes of a workspace name: NFC, each character mapped (a `-` becomes a
    space), what slugify does not allow removed, trimmed, runs of spaces made one `-`, lower
    case. Empty (a name of symbols only) is a uuid, as upstream. Cut at SLUG_MAX characters so
    that every slug can be addressed (upstream has no cap; only very long names differ)."""
    mapped = []
    for ch in unicodedata.normalize("NFC", name):
        out = _SLUG_MAP.get(ch, ch)
        mapped.append(_SLUG_REMOVE.sub("", " " if out == "-" else out))
    slug = _SLUG_SPACES.sub("-", "".join(mapped).strip(_JS_CHARS)).lower()
    return slug[:SLUG_MAX].rstrip("-") or str(uuid4())


def check_name(name: Any) -> str:
    if not isinstance(name, str) or not name.strip():
        raise InvalidInput("name cannot be null")
    if len(name) > NAME_MAX:
        raise InvalidInput(f"name must be at most {NAME_MAX} characters")
    return name.strip()


def _number(value: Any, field: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        try:
            return float(value)
        except (TypeError, ValueError):
            raise InvalidInput(f"{field} must be a number") from None
    return float(value)


def _text(value: Any, field: str, limit: int = NAME_MAX) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidInput(f"{field} must be a string or null")
    if len(value) > limit:
        raise InvalidInput(f"{field} must be at most {limit} characters")
    return value


def normalize_settings(raw: dict[str, Any]) -> dict[str, Any]:
    """Upstream's coercions and clamps for the writable fields; unknown keys are dropped.
    Beyond upstream, numbers get upper bounds (topN, history, temperature)."""
    out: dict[str, Any] = {}
    for key, value in raw.items():
        if key == "similarityThreshold":
            out[key] = 0.25 if value is None else min(1.0, max(0.0, _number(value, key)))
        elif key == "openAiTemp":
            out[key] = None if value is None else min(2.0, max(0.0, _number(value, key)))
        elif key == "openAiHistory":
            out[key] = 20 if value is None else min(MAX_HISTORY, max(0, int(_number(value, key))))
        elif key == "topN":
            out[key] = 4 if value is None else min(MAX_TOP_N, max(1, int(_number(value, key))))
        elif key == "chatMode":
            out[key] = value if value in CHAT_MODES else "automatic"
        elif key == "vectorSearchMode":
            out[key] = value if value in SEARCH_MODES else "default"
        elif key in ("openAiPrompt", "queryRefusalResponse"):
            out[key] = _text(value, key, TEXT_MAX)
        elif key in ("chatProvider", "chatModel", "agentProvider", "agentModel", "pfpFilename"):
            out[key] = _text(value, key)
        elif key == "router_id":
            out[key] = None if value is None else int(_number(value, key))
    return out


class WorkspaceDoc(msgspec.Struct, frozen=True):
    """A document linked into a workspace, with how its text was chunked (so a rebuild of
    the vector index chunks it identically)."""

    doc_id: str  # this link's id (upstream's workspace_documents.docId)
    docpath: str
    document_id: str
    text_hash: str
    chunk_size: int
    chunk_overlap: int
    chunks: int


class Workspace(Audited):
    class Created(Audited.Created):
        workspace_id: int
        name: str
        slug: str
        settings: dict[str, Any]

        def apply(self, ws: Workspace) -> None:
            ws.workspace_id, ws.name, ws.slug = self.workspace_id, self.name, self.slug
            ws.settings = dict(self.settings)
            ws.members = set()
            ws.documents = {}
            ws.pinned = set()
            ws.deleted = False

    class Updated(Audited.Event):
        name: str | None
        changes: dict[str, Any]

        def apply(self, ws: Workspace) -> None:
            if self.name is not None:
                ws.name = self.name
            ws.settings.update(self.changes)

    class MembersChanged(Audited.Event):
        added: tuple[int, ...]
        removed: tuple[int, ...]

        def apply(self, ws: Workspace) -> None:
            ws.members = (ws.members | set(self.added)) - set(self.removed)

    class DocumentsEmbedded(Audited.Event):
        documents: tuple[WorkspaceDoc, ...]

        def apply(self, ws: Workspace) -> None:
            for doc in self.documents:
                ws.documents[doc.docpath] = doc

    class DocumentsRemoved(Audited.Event):
        docpaths: tuple[str, ...]

        def apply(self, ws: Workspace) -> None:
            for path in self.docpaths:
                ws.documents.pop(path, None)
                ws.pinned.discard(path)

    class DocumentPinned(Audited.Event):
        docpath: str
        pinned: bool

        def apply(self, ws: Workspace) -> None:
            (ws.pinned.add if self.pinned else ws.pinned.discard)(self.docpath)

    class Deleted(Audited.Event):
        workspace_id: int

        def apply(self, ws: Workspace) -> None:
            ws.deleted = True

    @classmethod
    def create(cls, actor: Actor, workspace_id: int, name: str, slug: str, settings: dict[str, Any]) -> Workspace:
        values = {**DEFAULTS, **normalize_settings(settings)}
        if values["openAiPrompt"] is None:
            values["openAiPrompt"] = DEFAULT_PROMPT
        return cls._create(cls.Created, id=workspace_uuid(workspace_id), **actor.stamp(),
                           workspace_id=workspace_id, name=check_name(name), slug=slug, settings=values)

    def update(self, actor: Actor, raw: dict[str, Any]) -> bool:
        name = check_name(raw["name"]) if raw.get("name") is not None else None
        changes = {k: v for k, v in normalize_settings(raw).items() if self.settings.get(k) != v}
        if name == self.name:
            name = None
        if name is None and not changes:
            return False
        self._record(self.Updated, actor, name=name, changes=changes)
        return True

    def set_members(self, actor: Actor, user_ids: set[int], replace: bool) -> None:
        added = tuple(sorted(user_ids - self.members))
        removed = tuple(sorted(self.members - user_ids)) if replace else ()
        if added or removed:
            self._record(self.MembersChanged, actor, added=added, removed=removed)

    def embed(self, actor: Actor, documents: list[WorkspaceDoc]) -> list[WorkspaceDoc]:
        new = [d for d in documents if d.docpath not in self.documents]
        if new:
            self._record(self.DocumentsEmbedded, actor, documents=tuple(new))
        return new

    def remove_documents(self, actor: Actor, docpaths: list[str]) -> list[str]:
        present = [p for p in dict.fromkeys(docpaths) if p in self.documents]
        if present:
            self._record(self.DocumentsRemoved, actor, docpaths=tuple(present))
        return present

    def pin(self, actor: Actor, docpath: str, pinned: bool) -> None:
        if docpath not in self.documents:
            raise NotFound("Document not found in workspace")
        if pinned != (docpath in self.pinned):
            self._record(self.DocumentPinned, actor, docpath=docpath, pinned=pinned)

    def delete(self, actor: Actor) -> None:
        if not self.deleted:
            self._record(self.Deleted, actor, workspace_id=self.workspace_id)


WORKSPACE_DIRECTORY_ID = uuid5(NAMESPACE_URL, "ledgerllm:/workspace-directory")


class WorkspaceDirectory(Audited):
    """Slug -> workspace id, and the last id handed out; saved with each create and delete."""

    class Opened(Audited.Created):
        def apply(self, d: WorkspaceDirectory) -> None:
            d.slugs = {}
            d.last_id = 0

    class Listed(Audited.Event):
        workspace_id: int
        slug: str

        def apply(self, d: WorkspaceDirectory) -> None:
            d.slugs[self.slug] = self.workspace_id
            d.last_id = max(d.last_id, self.workspace_id)

    class Unlisted(Audited.Event):
        slug: str

        def apply(self, d: WorkspaceDirectory) -> None:
            d.slugs.pop(self.slug, None)

    @classmethod
    def open(cls, actor: Actor) -> WorkspaceDirectory:
        return cls._create(cls.Opened, id=WORKSPACE_DIRECTORY_ID, **actor.stamp())

    def next_id(self) -> int:
        return self.last_id + 1

    def id_of(self, slug: str) -> int | None:
        return self.slugs.get(slug)

    def take_slug(self, actor: Actor, workspace_id: int, slug: str) -> None:
        if slug in self.slugs:
            raise Conflict(f"Workspace slug {slug!r} is taken")
        self._record(self.Listed, actor, workspace_id=workspace_id, slug=slug)

    def free_slug(self, actor: Actor, slug: str) -> None:
        if slug in self.slugs:
            self._record(self.Unlisted, actor, slug=slug)
