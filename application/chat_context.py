"""What a chat's prompt is given besides the message: its attachments (images for the model,
parsed documents as context) and the workspace's retrieved sources (pinned documents, then
the nearest chunks above the similarity threshold)."""

from __future__ import annotations

import base64
import uuid
import msgspec

from application.ledger import Context
from application.ports import JsonObject, Part
from application.search import embed_query
from application.rows import WorkspaceRow
from domain.errors import InvalidInput

MAX_ATTACHMENTS = 10
MAX_ATTACHMENT_BYTES = 10 << 20
SOURCE_PREVIEW = 1000


class Attachment(msgspec.Struct, frozen=True):
    name: str
    mime: str
    content: str  # base64, or a data URL


def read_attachments(ctx: Context, raw: list[Attachment] | None
                 ) -> tuple[list[Part], list[str], list[JsonObject], list[dict[str, str]]]:
    """Images become image parts for the model; `application/anythingllm-document` files are
    parsed and added as context and sources. Only name and type are recorded."""
    if raw is None:
        return [], [], [], []
    if len(raw) > MAX_ATTACHMENTS:
        raise InvalidInput(f"attachments must be a list of at most {MAX_ATTACHMENTS} items")
    images: list[Part] = []
    context: list[str] = []
    sources: list[JsonObject] = []
    meta: list[dict[str, str]] = []
    for item in raw:
        name, mime, content = (item.name or "attachment")[:255], item.mime[:100], item.content
        if len(content) > MAX_ATTACHMENT_BYTES * 4 // 3 + 100:
            raise InvalidInput(f"attachment {name} is larger than {MAX_ATTACHMENT_BYTES} bytes")
        meta.append({"name": name, "mime": mime})
        if mime == "application/anythingllm-document":
            data = _decode_base64(content, name)
            try:
                parsed = ctx.content.parse(ctx.content.safe_filename(name), data, None)
            except ValueError as e:
                raise InvalidInput(f"attachment {name}: {e}") from None
            context.append(parsed.text)
            sources.append({"id": str(uuid.uuid4()), "title": parsed.title or name, "text": parsed.text[:SOURCE_PREVIEW]})
            continue
        url = content if content.startswith("data:") else f"data:{mime or 'image/png'};base64,{content}"
        _decode_base64(url.split(",", 1)[-1], name)
        images.append({"type": "image_url", "image_url": {"url": url}})
    return images, context, sources, meta


def _decode_base64(text: str, name: str) -> bytes:
    try:
        return base64.b64decode(text.split(",", 1)[-1] if text.startswith("data:") else text, validate=True)
    except ValueError:
        raise InvalidInput(f"attachment {name} is not valid base64") from None


def retrieve(ctx: Context, workspace: WorkspaceRow, message: str) -> tuple[list[str], list[JsonObject]]:
    """Pinned documents (whole text, as upstream) and the top-N chunks above the threshold."""
    context: list[str] = []
    sources: list[JsonObject] = []
    pinned_paths = set()
    for link in ctx.library.workspace_documents(workspace.id):
        if link.pinned:
            pinned_paths.add(link.docpath)
            text = _document_text(ctx, link.document_id)
            if text:
                context.append(text)
                sources.append({"id": link.doc_id, **link.metadata, "text": text[:SOURCE_PREVIEW] + "...continued on in source document..."})
    index = ctx.content.index
    if index.count(workspace.aggregate_id) == 0:
        return context, sources
    top_n = int(workspace.settings.get("topN") or 4)
    threshold = float(workspace.settings.get("similarityThreshold") or 0.0)
    hits = index.search(workspace.aggregate_id, embed_query(ctx, message[:20_000]), top_n + len(pinned_paths) * 4)
    rows = ctx.vectors.chunks([i for i, _ in hits])
    meta_by_doc = _doc_meta(ctx, {r.document_id for r in rows.values()})
    for chunk_id, score in hits:
        row = rows.get(chunk_id)
        if row is None or score < threshold or row.docpath in pinned_paths or len(context) >= top_n + len(pinned_paths):
            continue
        context.append(row.text)
        sources.append({"id": row.vector_id, **meta_by_doc.get(row.document_id, {}), "text": row.text,
                        "score": round(score, 6)})
    return context, sources


def _document_text(ctx: Context, document_id: str) -> str | None:
    doc = ctx.library.document(document_id)
    return ctx.content.blobs.get(doc.text_hash).decode() if doc else None


def _doc_meta(ctx: Context, ids: set[str]) -> dict[str, JsonObject]:
    if not ids:
        return {}
    return {d.document_id: {**d.metadata, "wordCount": d.word_count, "token_count_estimate": d.token_count}
            for d in ctx.library.documents(ids).values()}
