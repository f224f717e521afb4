"""The query side of a read model: a view object that use cases reach through a Protocol in
`application.views`. Each read model subclasses `ReadModelView` beside its tables and adds typed
query methods that return `application.rows` Structs; its SQL stays in that module."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from projections.base import Tx
from projections.runner import ProjectionRunner


class ReadModelView:
    """Typed queries over one read model, and read-after-write through its runner."""

    def __init__(self, runner: ProjectionRunner) -> None:
        self.runner = runner

    @property
    def name(self) -> str:
        return self.runner.name

    def ensure(self, position: int | None) -> None:
        """Return once this view has applied the event at `position` (None: at once)."""
        self.runner.ensure(position)

    def check(self) -> None:
        """Raise `ProjectionStalled` (answered 503) while this read model is stalled."""
        self.runner.check()

    @contextmanager
    def _read(self, stale_ok: bool = False) -> Iterator[Tx]:
        """One read transaction on this view's tables (a consistent snapshot). While the read
        model is stalled its rows may be out of date, so reads fail closed unless the caller
        says a stale answer is safe (`stale_ok`)."""
        if not stale_ok:
            self.runner.check()
        with self.runner.view.read() as tx:
            yield tx

    @property
    def view(self):  # noqa: ANN201  (transitional: use cases not yet on query methods)
        self.runner.check()
        return self.runner.view

    def catch_up(self) -> int:
        return self.runner.catch_up()
