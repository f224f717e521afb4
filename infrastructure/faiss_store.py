"""Every workspace's ``VectorIndex`` of one process, and saving and loading them together."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterable
from pathlib import Path

from infrastructure.faiss_common import DIMENSIONS
from infrastructure.faiss_index import FORMAT, VectorIndex, sidecar
from infrastructure.files import atomic_write

INDEX_SUFFIX = ".faiss"
MANIFEST = "manifest.json"

WorkspaceId = int | str
_SLUG = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,127}$")


class WorkspaceIndexes:
    """One ``VectorIndex`` per workspace, created on first ``get`` (approximate from
    ``approx_threshold`` vectors on, see ``VectorIndex``). Thread-safe.

    On disk (``save_all``/``load_all``): ``<dir>/ws-<id>.faiss`` (+ ``.json`` sidecar) per
    workspace and ``<dir>/manifest.json`` naming the workspaces and the position they all
    reflect. Index files are written before the manifest and stale ones deleted after it, so
    the manifest never names a file that a later save removed.
    """

    def __init__(self, dimensions: int = DIMENSIONS, *, approx_threshold: int = 0) -> None:
        self.dimensions = dimensions
        self.approx_threshold = approx_threshold
        self._lock = threading.Lock()
        self._indexes: dict[WorkspaceId, VectorIndex] = {}
        self._saved_versions: dict[WorkspaceId, tuple[int, int]] = {}  # workspace -> index.version

    def get(self, workspace_id: WorkspaceId) -> VectorIndex:
        _check_workspace_id(workspace_id)
        with self._lock:
            index = self._indexes.get(workspace_id)
            if index is None:
                index = self._indexes[workspace_id] = VectorIndex(self.dimensions, approx_threshold=self.approx_threshold)
            return index

    def peek(self, workspace_id: WorkspaceId) -> VectorIndex | None:
        """The workspace's index if it has one, without creating it."""
        with self._lock:
            return self._indexes.get(workspace_id)

    def drop(self, workspace_id: WorkspaceId) -> bool:
        with self._lock:
            self._saved_versions.pop(workspace_id, None)
            return self._indexes.pop(workspace_id, None) is not None

    def clear(self) -> None:
        with self._lock:
            self._indexes.clear()
            self._saved_versions.clear()

    def workspace_ids(self) -> list[WorkspaceId]:
        with self._lock:
            return list(self._indexes)

    def __len__(self) -> int:
        with self._lock:
            return len(self._indexes)

    def __contains__(self, workspace_id: object) -> bool:
        with self._lock:
            return workspace_id in self._indexes

    def wait_ready(self, timeout: float) -> None:
        """Let running background builds finish (each within ``timeout`` seconds)."""
        with self._lock:
            items = list(self._indexes.values())
        for index in items:
            index.wait_ready(timeout)

    def save_all(self, directory: Path, position: int) -> None:
        """Save every index (those unchanged since their last save are not rewritten), then
        the manifest with ``position``, then delete files of workspaces no longer held.

        Every change up to ``position`` must already be applied when this starts; changes
        made while it runs may or may not be saved, which is harmless: they come after
        ``position`` and a follower re-applies them (add is an upsert, remove idempotent).
        """
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        with self._lock:
            items = list(self._indexes.items())
        entries = []
        for workspace_id, index in items:
            file = directory / _file_name(workspace_id)
            version = index.version  # read before saving: a change during save forces the next one
            if self._saved_versions.get(workspace_id) != version or not file.exists():
                index.save(file, position)
                with self._lock:
                    if self._indexes.get(workspace_id) is index:
                        self._saved_versions[workspace_id] = version
            entries.append({"id": workspace_id, "file": file.name})
        manifest = {"format": FORMAT, "position": int(position), "dimensions": self.dimensions, "workspaces": entries}
        atomic_write(directory / MANIFEST, json.dumps(manifest, sort_keys=True).encode())
        keep = {e["file"] for e in entries}
        for stale in _index_files(directory):
            if stale.name not in keep:
                stale.unlink(missing_ok=True)
                sidecar(stale).unlink(missing_ok=True)

    def load_all(self, directory: Path) -> int | None:
        """Replace the held indexes with those saved in ``directory``; returns the position to
        resume following from. None (and nothing held) when there is no manifest or any
        named index is missing or corrupt: rebuild from the vectors read model then.
        Call it before any ``save_all`` into the same directory starts (it deletes the temp
        files a killed save left behind)."""
        directory = Path(directory)
        _remove_leftover_temps(directory)
        try:
            manifest = json.loads((directory / MANIFEST).read_bytes())
            if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
                return self._loaded({}, None)
            position = manifest["position"]
            if not isinstance(position, int) or manifest.get("dimensions") != self.dimensions:
                return self._loaded({}, None)
            loaded: dict[WorkspaceId, VectorIndex] = {}
            for entry in manifest["workspaces"]:
                workspace_id, name = entry["id"], entry["file"]
                _check_workspace_id(workspace_id)
                if name != _file_name(workspace_id):
                    return self._loaded({}, None)
                result = VectorIndex.load(directory / name, self.approx_threshold)
                if result is None or result[0].dimensions != self.dimensions:
                    return self._loaded({}, None)
                loaded[workspace_id] = result[0]
        except (OSError, ValueError, KeyError, TypeError):
            return self._loaded({}, None)
        for index in loaded.values():
            index.upkeep()
        return self._loaded(loaded, position)

    def _loaded(self, loaded: dict[WorkspaceId, VectorIndex], position: int | None) -> int | None:
        with self._lock:
            self._indexes = dict(loaded)
            # Files on disk match what was just loaded: no need to rewrite them.
            self._saved_versions = {w: i.version for w, i in loaded.items()}
        return position


def _check_workspace_id(workspace_id: object) -> None:
    if isinstance(workspace_id, bool) or not isinstance(workspace_id, int | str):
        raise TypeError(f"workspace id must be an int or str, got {type(workspace_id).__name__}")
    if isinstance(workspace_id, str) and not _SLUG.match(workspace_id):
        raise ValueError(f"workspace id {workspace_id!r} must be 1-128 of A-Z a-z 0-9 _ - .")


def _file_name(workspace_id: WorkspaceId) -> str:
    if isinstance(workspace_id, int):
        return f"ws-{workspace_id}{INDEX_SUFFIX}"
    return f"wss-{workspace_id}{INDEX_SUFFIX}"


def _index_files(directory: Path) -> Iterable[Path]:
    for path in directory.iterdir():
        if path.name.endswith(INDEX_SUFFIX) and path.name.startswith(("ws-", "wss-")):
            yield path


def _remove_leftover_temps(directory: Path) -> None:
    """Temp files of a save that was killed midway (one index can be hundreds of MB)."""
    try:
        paths = list(directory.iterdir())
    except OSError:
        return
    for path in paths:
        name = path.name
        if name.startswith((".ws-", ".wss-", f".{MANIFEST}.")) and name.endswith(".tmp"):
            path.unlink(missing_ok=True)
