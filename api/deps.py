"""Dependencies handed to route handlers."""

from __future__ import annotations

from litestar.datastructures import State

from application.ledger import Context


def provide_ctx(state: State) -> Context:
    return state.runtime.ctx
