"""Secret settings (provider API keys, webhook signing secrets) in DATA_DIR/secrets.json, mode 0600.

They never enter an event, a read model, a log line or a response: the event only records
which key changed. With several machines, set provider keys in each machine's environment
(the environment wins over this file), or share DATA_DIR."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable
from pathlib import Path

from infrastructure.files import atomic_write


class SecretSettings:
    def __init__(self, data_dir: Path) -> None:
        self._path = Path(data_dir) / "secrets.json"
        self._lock = threading.Lock()

    def _read(self) -> dict[str, str]:
        try:
            return json.loads(self._path.read_text())
        except FileNotFoundError:
            return {}

    def get(self, key: str) -> str | None:
        return self._read().get(key)

    def keys(self) -> set[str]:
        return set(self._read())

    def update(self, values: dict[str, str]) -> None:
        with self._lock:
            atomic_write(self._path, json.dumps({**self._read(), **values}).encode())  # mode 0600

    def discard(self, keys: Iterable[str]) -> None:
        with self._lock:
            gone = set(keys)
            atomic_write(self._path, json.dumps({k: v for k, v in self._read().items() if k not in gone}).encode())
