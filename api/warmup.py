"""Warm-up: the models a server starts loading in the background at start-up (the embedding
model, litellm), so the first request that needs one does not wait for it, and readiness'
view of them: not ready while one is loading, or when loading it failed.

Once start-up and each model load are done, the heap they built is frozen (`freeze_heap`): the
collector's full passes then skip the few hundred thousand long-lived objects of the libraries
and models, which otherwise made one request in every few thousand wait ~80 ms for a pass."""

from __future__ import annotations

import gc
import logging
import threading
from collections.abc import Callable

log = logging.getLogger("ledgerllm")


def freeze_heap() -> None:
    """Collect what start-up left as garbage, then move every live object to the collector's
    permanent generation: long-lived by then (modules, models, the runtime), never worth
    traversing again. Objects made later are collected as usual."""
    gc.collect()
    gc.freeze()


class Warmup:
    def __init__(self) -> None:
        self._loaded: dict[str, Callable[[], bool]] = {}
        self._failed: dict[str, str] = {}

    def start(self, name: str, load: Callable[[], object], loaded: Callable[[], bool]) -> None:
        """Run `load` in a daemon thread; `loaded()` says whether the thing is there (it may
        also have been loaded by a request that needed it first)."""
        self._loaded[name] = loaded
        threading.Thread(target=self._run, args=(name, load), name=f"ledgerllm-warm-{name}", daemon=True).start()

    def _run(self, name: str, load: Callable[[], object]) -> None:
        try:
            load()
        except Exception as error:  # readiness names it; requests that need it fail on their own
            self._failed[name] = type(error).__name__
            log.exception("loading the %s failed", name)
        else:
            log.info("%s loaded", name)
        finally:
            freeze_heap()

    def reasons(self) -> list[str]:
        """Why the server is not ready yet as far as its models go: "embedder loading", ..."""
        reasons = []
        for name, loaded in self._loaded.items():
            if loaded():
                continue
            failed = self._failed.get(name)
            reasons.append(f"{name} failed to load ({failed}); see the server log" if failed else f"{name} loading")
        return reasons
