"""Loading the models at start-up without holding it up, and telling readiness what is still
loading: a server answers `/api/ping` at once, but `/api/health/ready` stays 503 until the
embedding model and the completions client it warms are loaded (so a load balancer sends it no
chat that would wait seconds for them)."""

from __future__ import annotations

import logging
import threading
from typing import Protocol

log = logging.getLogger("ledgerllm")


class Loadable(Protocol):
    """A part loaded in the background: `warm()` loads it, `loaded` says it is."""

    @property
    def loaded(self) -> bool: ...

    def warm(self) -> object: ...


class Warmup:
    """The parts this process loads at start-up, each in its own daemon thread."""

    def __init__(self) -> None:
        self._parts: dict[str, Loadable] = {}
        self._failed: dict[str, str] = {}
        self._lock = threading.Lock()

    def start(self, name: str, part: Loadable) -> None:
        self._parts[name] = part
        threading.Thread(target=self._load, args=(name, part), name=f"ledgerllm-warm-{name}", daemon=True).start()

    def _load(self, name: str, part: Loadable) -> None:
        try:
            part.warm()
        except Exception as error:  # reported by readiness; the first request tries again
            log.exception("loading the %s failed", name)
            with self._lock:
                self._failed[name] = f"{type(error).__name__}: {error}"[:200]

    def problems(self) -> list[str]:
        """Why this process is not ready to serve chats yet (empty once every part is loaded)."""
        with self._lock:
            failed = dict(self._failed)
        reasons = []
        for name, part in self._parts.items():
            if part.loaded:
                continue
            reasons.append(f"{name} failed to load ({failed[name]})" if name in failed else f"{name} is loading")
        return reasons
