"""Secret settings (provider API keys) in DATA_DIR/secrets.json, mode 0600.

They never enter an event, a read model, a log line or a response: the event only records
which key changed. With several machines, set provider keys in each machine's environment
(the environment wins over this file), or share DATA_DIR."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path


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
            data = {**self._read(), **values}
            self._path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self._path.with_suffix(".tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as f:
                json.dump(data, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self._path)
