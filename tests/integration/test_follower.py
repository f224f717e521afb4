"""The follower thread on real SQLite and PostgreSQL: it brings every read model up to the head
and tells the callbacks of every new event once; new events are read once per round, so a read
model that wants none of them is not asked anything (a chat used to cost three statements per
read model in the background)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

import projections.follower as follower_module
import projections.runner as runner_module
from api.wiring import Runtime
from application.apikeys import CreateApiKey, create_api_key
from projections.follower import Follower
from projections.runner import ProjectionRunner
from tests.integration.test_projections import append_key, head, owner, revoke_key, rows_of, runtime_of
from tests.support.app import Backend

FOLLOWER_THREAD = "ledgerllm-follower"


class CountingView:
    """A read model's view that counts the calls the follower thread makes to it."""

    def __init__(self, view: Any) -> None:
        self._view = view
        self.follower_calls = 0

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._view, name)
        if not callable(attribute):
            return attribute

        def call(*args: Any, **kwargs: Any) -> Any:
            if threading.current_thread().name == FOLLOWER_THREAD:
                self.follower_calls += 1
            return attribute(*args, **kwargs)
        return call


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


@contextmanager
def following(runtime: Runtime, events: list[Any]) -> Iterator[tuple[Follower, dict[str, CountingView]]]:
    views: dict[str, CountingView] = {}
    for runner in runtime.runners:
        views[runner.name] = runner.view = CountingView(runner.view)  # type: ignore[assignment]
    follower = Follower(runtime.ctx.ledger, runtime.runners, poll=0.01,
                        on_topics=lambda topics, observed: events.extend(topics))
    follower.start()
    try:
        yield follower, views
    finally:
        follower.stop()


def caught_up(runners: list[ProjectionRunner], position: int) -> Callable[[], bool]:
    return lambda: all(r.position() >= position for r in runners)


def test_the_follower_brings_every_view_to_the_head_and_reports_each_event_once(backend: Backend) -> None:
    with runtime_of(backend) as runtime:
        ctx, topics = runtime.ctx, []
        with following(runtime, topics):
            start = head(ctx.ledger)
            key_id, _ = append_key(ctx, "silent-1")  # saved without running any projection
            create_api_key(ctx, CreateApiKey(principal=owner(ctx), correlation_id="through-the-use-case"))
            revoked = revoke_key(ctx, key_id, "silent-revoke")
            for n in range(3):
                append_key(ctx, f"silent-{n + 2}")
            position = head(ctx.ledger)
            assert position > revoked > start
            wait_until(caught_up(runtime.runners, position), "every view at the head")
            wait_until(lambda: len(topics) >= position - start, "every new event reported")
        assert len(topics) == position - start  # once each, none twice
        keys = {k["name"]: k for k in rows_of(ctx.api_keys.runner)["api_keys"]}
        assert {"silent-1", "silent-2", "silent-3", "silent-4"} <= set(keys)
        assert keys["silent-1"]["revoked_at"] is not None and keys["silent-2"]["revoked_at"] is None
        assert all(r.view.position(ctx.ledger.name) <= position for r in runtime.runners)


def test_a_view_that_wants_none_of_the_new_events_is_not_asked(backend: Backend, monkeypatch) -> None:
    monkeypatch.setattr(follower_module, "IDLE_ROUND_SECONDS", 3600.0)  # no periodic full round in the test
    with runtime_of(backend) as runtime:
        ctx, topics = runtime.ctx, []
        with following(runtime, topics) as (_, views):
            start = head(ctx.ledger)
            last = views[runtime.runners[-1].name]  # a full round asks each view, in order
            wait_until(lambda: last.follower_calls >= 1, "the follower's first round")
            before = {name: v.follower_calls for name, v in views.items()}
            append_key(ctx, "only-keys-and-audit")
            position = head(ctx.ledger)
            wait_until(lambda: len(topics) >= position - start, "the new event reported")
            wait_until(caught_up([runtime.runner("api_keys"), runtime.runner("audit_log")], position), "keys and audit caught up")
            time.sleep(0.2)  # a few more polls: the head stays where it is
        asked = {name for name, v in views.items() if v.follower_calls > before[name]}
        assert "api_keys" in asked and "audit_log" in asked
        untouched = {r.name for r in runtime.runners
                     if not any(r.projection.wants(n) for n in ctx.ledger.recorder.select_notifications(
                         start=start + 1, limit=10))}
        assert {"chats", "library"} <= untouched
        assert not asked & untouched, asked & untouched
        assert all(r.position() >= position for r in runtime.runners)


@pytest.mark.parametrize("burst", [runner_module.BATCH + 7])
def test_a_burst_longer_than_a_batch_still_reaches_every_view(sqlite_backend: Backend, burst: int) -> None:
    with runtime_of(sqlite_backend) as runtime:
        ctx, topics = runtime.ctx, []
        with following(runtime, topics):
            start = head(ctx.ledger)
            for n in range(burst // 2):  # issued and revoked: two events each, some rounds see many
                key_id, _ = append_key(ctx, f"burst-{n}")
                revoke_key(ctx, key_id, f"burst-revoke-{n}")
            position = head(ctx.ledger)
            wait_until(caught_up(runtime.runners, position), "every view at the head")
            wait_until(lambda: len(topics) >= position - start, "every new event reported")
        assert len(topics) == position - start
        revoked = [k for k in rows_of(ctx.api_keys.runner)["api_keys"] if k["name"].startswith("burst-")]
        assert len(revoked) == burst // 2 and all(k["revoked_at"] is not None for k in revoked)


def test_a_failed_read_of_the_new_events_does_not_stop_the_follower(sqlite_backend: Backend) -> None:
    with runtime_of(sqlite_backend) as runtime:
        ctx, topics = runtime.ctx, []
        recorder = ctx.ledger.recorder
        real_read, failures, armed = recorder.read_events, [], threading.Event()

        def failing_once(after: int, limit: int) -> Any:
            if armed.is_set() and not failures and threading.current_thread().name == FOLLOWER_THREAD:
                failures.append(after)
                raise OSError("disk I/O error (injected)")
            return real_read(after, limit)

        recorder.read_events = failing_once  # type: ignore[method-assign]
        try:
            with following(runtime, topics) as (follower, _):
                start = head(ctx.ledger)
                wait_until(caught_up(runtime.runners, start), "the first round")
                time.sleep(0.2)  # that round is over: the next one reads the new events once, and fails
                armed.set()
                for n in range(3):
                    append_key(ctx, f"after-failure-{n}")
                position = head(ctx.ledger)
                wait_until(lambda: bool(failures), "the injected failure")
                wait_until(caught_up(runtime.runners, position), "every view at the head after the failure")
                wait_until(lambda: len(topics) >= position - start, "every new event reported")
                assert follower.running
        finally:
            recorder.read_events = real_read  # type: ignore[method-assign]
        assert len(topics) == position - start
