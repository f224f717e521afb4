"""The read models, on real SQLite and PostgreSQL: a rebuild from zero gives the same rows, a
restart catches up, concurrent runners never apply an event twice, `ensure` gives
read-after-write, and the library's one-event entry point works."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import pytest
from eventsourcing.persistence import IntegrityError, Tracking
from eventsourcing.utils import get_topic

from api.wiring import Runtime, open_runtime
from application.apikeys import (
    CreateApiKey, RevokeApiKey, create_api_key, get_key, hash_secret, new_secret, revoke_api_key,
)
from application.ids import take_id
from application.invites import CreateInvite, DisableInvite, create_invite, disable_invite
from application.ledger import Context, Ledger
from application.users import (
    CreateUser, EnableMultiUser, UpdatePreferences, UpdateUser, create_user, enable_multi_user, principal_for,
    update_preferences, update_user,
)
from domain.apikeys import ApiKey, api_key_uuid
from domain.principal import Actor, Principal
from infrastructure.eventstore import open_view
from projections.base import SqlProjection, Tx, handles
from projections.runner import ProjectionLagging, ProjectionRunner
from tests.support.app import Backend
from tests.unit.test_domain_rules import all_event_classes


# helpers ------------------------------------------------------------------------------------
@contextmanager
def runtime_of(backend: Backend) -> Iterator[Runtime]:
    runtime = open_runtime(backend.settings())
    try:
        yield runtime
    finally:
        runtime.close()


def owner(ctx: Context) -> Principal:
    row = ctx.accounts.user(ctx.accounts.owner_id())
    assert row is not None
    return principal_for(ctx, row)


def account_views(ctx: Context) -> list[ProjectionRunner]:
    """The read models of users and keys (the runtime may run others, e.g. for documents)."""
    return [ctx.accounts.runner, ctx.api_keys.runner]


def rows_of(runner: ProjectionRunner) -> dict[str, list[dict[str, Any]]]:
    """Every row of every table of the runner's read model, in a stable order."""
    with runner.view.read() as tx:
        return {table: tx.all(f"SELECT * FROM {table} ORDER BY 1") for table in runner.projection.tables}


def head(ledger: Ledger) -> int:
    return ledger.recorder.max_notification_id() or 0


def all_notifications(ledger: Ledger) -> list[Any]:
    return ledger.recorder.select_notifications(start=1, limit=1_000_000)


def append_key(ctx: Context, correlation_id: str, user_id: int = 1) -> tuple[int, int]:
    """Issue a key by saving the domain objects only, as a process that runs no projections
    would: the read models learn of it only when a runner catches up. Returns (key id, position)."""
    actor = Actor(user_id=1, api_key_id=None, correlation_id=correlation_id)
    key_id = take_id(ctx, "api_keys", actor)
    secret, prefix = new_secret()
    key = ApiKey.issue(actor, key_id, user_id, hash_secret(secret), prefix, name=correlation_id)
    recordings = ctx.ledger.save(key)
    return key_id, recordings[-1].notification.id


def revoke_key(ctx: Context, key_id: int, correlation_id: str) -> int:
    key: ApiKey = ctx.ledger.repository.get(api_key_uuid(key_id))
    assert key.revoke(Actor(user_id=1, api_key_id=None, correlation_id=correlation_id))
    return ctx.ledger.save(key)[-1].notification.id


def populate(ctx: Context) -> dict[str, Any]:
    """Drive users, keys, invites and preferences through the use cases (3 password hashes)."""
    boss = enable_multi_user(ctx, EnableMultiUser(
        principal=owner(ctx), correlation_id="mum", username="boss", password="boss-password"))
    admin = principal_for(ctx, boss)
    mia = create_user(ctx, CreateUser(principal=admin, correlation_id="c1", username="mia",
                                      password="mia-password", role="manager"))
    dan = create_user(ctx, CreateUser(principal=admin, correlation_id="c2", username="dan",
                                      password="dan-password", daily_message_limit=5, bio="hi"))
    keys = [
        create_api_key(ctx, CreateApiKey(principal=admin, correlation_id="k1", name="ci",
                                         scopes=("read", "chat"), expires_in=timedelta(days=30), rate_limit=60)),
        create_api_key(ctx, CreateApiKey(principal=admin, correlation_id="k2", user_id=dan.id)),
        create_api_key(ctx, CreateApiKey(principal=admin, correlation_id="k3", user_id=mia.id, name="mia's")),
    ]
    assert revoke_api_key(ctx, RevokeApiKey(principal=admin, correlation_id="r1", key_id=keys[2].key.id))
    update_user(ctx, UpdateUser(principal=admin, correlation_id="u1", user_id=dan.id, username="daniel",
                                bio="updated", suspended=True))
    invite = create_invite(ctx, CreateInvite(principal=admin, correlation_id="i1", workspace_ids=[2, 1]))
    create_invite(ctx, CreateInvite(principal=admin, correlation_id="i2"))
    disable_invite(ctx, DisableInvite(principal=admin, correlation_id="i3", invite_id=invite.invite.id))
    update_preferences(ctx, UpdatePreferences(principal=admin, correlation_id="p1",
                                              values={"support_email": "s@example.com", "bogus": "x"}))
    return {"admin": admin, "mia": mia, "dan": dan, "keys": keys}


def run_threads(*targets: Callable[[], None], timeout: float = 60) -> list[BaseException]:
    """Run the targets in threads; return what each raised."""
    errors: list[BaseException] = []

    def guarded(target: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            try:
                target()
            except BaseException as e:  # noqa: BLE001 - reported to the test
                errors.append(e)
        return run

    threads = [threading.Thread(target=guarded(t), daemon=True) for t in targets]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout)
        assert not t.is_alive(), "a thread hung"
    return errors


class EventLogProjection(SqlProjection):
    """A test read model that inserts one row per applied event and has no unique key, so an
    event applied twice shows as a duplicate row instead of an error."""

    name = "event_log"
    tables = ["event_log"]
    schema = [
        "CREATE TABLE IF NOT EXISTS event_log ("
        " originator_id TEXT NOT NULL, originator_version INTEGER NOT NULL, topic TEXT NOT NULL)"
    ]

    @handles(*all_event_classes())
    def _log(self, tx: Tx, e: Any) -> None:
        tx.execute("INSERT INTO event_log VALUES (?, ?, ?)",
                   (str(e.originator_id), e.originator_version, get_topic(type(e))))


def event_log_runner(runtime: Runtime) -> ProjectionRunner:
    view = open_view(runtime.settings, EventLogProjection.name, EventLogProjection.views())
    return ProjectionRunner(runtime.ctx.ledger, EventLogProjection(view))


# (a) rebuild ---------------------------------------------------------------------------------
def test_rebuild_from_zero_gives_the_same_rows(backend: Backend) -> None:
    with runtime_of(backend) as runtime:
        ctx = runtime.ctx
        made = populate(ctx)
        for runner in account_views(ctx):  # each use case waits only for the read model it reads back
            runner.catch_up()
        before = {r.name: rows_of(r) for r in account_views(ctx)}
        # the runner's position: the stored one may trail it by events the view ignores
        positions = {r.name: r.position() for r in account_views(ctx)}
        # the use cases left the rows one expects
        users = {u["username"]: u for u in before["accounts"]["users"]}
        assert set(users) == {"boss", "mia", "daniel"}
        assert users["daniel"]["suspended"] == 1 and users["daniel"]["bio"] == "updated"
        assert [k["id"] for k in before["api_keys"]["api_keys"]] == [k.key.id for k in made["keys"]]
        assert [k["revoked_at"] is not None for k in before["api_keys"]["api_keys"]] == [False, False, True]
        assert [i["status"] for i in before["accounts"]["invites"]] == ["disabled", "pending"]
        assert {"label": "support_email", "value": "s@example.com"} in before["accounts"]["system_settings"]
        assert all(p == head(ctx.ledger) for p in positions.values())

        for runner in account_views(ctx):
            runner.view.reset(ctx.ledger.name)
            assert runner.view.position(ctx.ledger.name) == 0
            assert all(rows == [] for rows in rows_of(runner).values())
            assert runner.catch_up() == positions[runner.name]

        assert {r.name: rows_of(r) for r in account_views(ctx)} == before
        assert {r.name: r.view.position(ctx.ledger.name) for r in account_views(ctx)} == positions


# (b) restart ---------------------------------------------------------------------------------
def test_views_catch_up_with_events_appended_while_the_runtime_was_closed(backend: Backend) -> None:
    with runtime_of(backend) as first:
        admin = owner(first.ctx)
        early = create_api_key(first.ctx, CreateApiKey(principal=admin, correlation_id="early"))
        name = first.ctx.ledger.name

    with runtime_of(backend) as second:  # another process, using the use cases
        later = create_api_key(second.ctx, CreateApiKey(principal=owner(second.ctx), correlation_id="later"))
        assert revoke_api_key(second.ctx, RevokeApiKey(principal=owner(second.ctx), correlation_id="rv",
                                                       key_id=early.key.id))
        # and one that saves events but runs no projections: the views fall behind
        silent_id, silent_position = append_key(second.ctx, "silent")
        revoke_position = revoke_key(second.ctx, later.key.id, "silent-revoke")
        for runner in account_views(second.ctx):
            assert runner.view.position(name) < revoke_position
        assert get_key(second.ctx, silent_id) is None

    with runtime_of(backend) as reopened:
        ctx = reopened.ctx
        assert [r.position() for r in account_views(ctx)] == [head(ctx.ledger)] * 2
        assert revoke_position == head(ctx.ledger) and silent_position < revoke_position
        keys = {k["id"]: k for k in rows_of(ctx.api_keys.runner)["api_keys"]}
        assert set(keys) == {early.key.id, later.key.id, silent_id}
        assert keys[early.key.id]["revoked_at"] is not None
        assert keys[later.key.id]["revoked_at"] is not None
        assert keys[silent_id]["revoked_at"] is None and keys[silent_id]["name"] == "silent"


# (c) concurrent runners ----------------------------------------------------------------------
def test_concurrent_runners_never_apply_an_event_twice(backend: Backend) -> None:
    keys_to_append = 40
    with runtime_of(backend) as one, runtime_of(backend) as two, runtime_of(backend) as writer:
        name = one.ctx.ledger.name
        one.runner("api_keys").view.reset(name)  # the two runners rebuild it while events arrive
        runners = {
            "one": [one.runner("api_keys"), event_log_runner(one)],
            "two": [two.runner("api_keys"), event_log_runner(two)],
        }
        appending = threading.Event()
        appending.set()
        rounds = {"one": 0, "two": 0}

        def catch_up(which: str) -> Callable[[], None]:
            def run() -> None:
                # keep going while events arrive, then a few more rounds
                extra = 5
                while appending.is_set() or extra:
                    if not appending.is_set():
                        extra -= 1
                    for runner in runners[which]:
                        runner.catch_up()
                    rounds[which] += 1
            return run

        def append() -> None:
            try:
                issued: list[int] = []
                for n in range(keys_to_append):
                    key_id, _ = append_key(writer.ctx, f"append-{n}")
                    issued.append(key_id)
                    if n % 3 == 2:
                        revoke_key(writer.ctx, issued[-2], f"revoke-{n}")
                    time.sleep(0.001)
            finally:
                appending.clear()

        try:
            errors = run_threads(catch_up("one"), catch_up("two"), append)
            log = rows_of(runners["one"][1])["event_log"]
            log_positions = [runners[w][1].view.position(name) for w in ("one", "two")]
        finally:
            for w in ("one", "two"):
                runners[w][1].view.datastore.close()
        assert errors == [], f"threads raised: {errors!r}"
        assert rounds["one"] >= 5 and rounds["two"] >= 5

        last = head(writer.ctx.ledger)
        notifications = all_notifications(writer.ctx.ledger)
        topics = [n.topic for n in notifications]
        issued_count = topics.count(get_topic(ApiKey.Issued))
        revoked_count = topics.count(get_topic(ApiKey.Revoked))
        assert issued_count == keys_to_append and revoked_count == keys_to_append // 3

        assert one.runner("api_keys").view.position(name) == two.runner("api_keys").view.position(name) == last
        assert log_positions == [last, last]
        keys = rows_of(one.runner("api_keys"))["api_keys"]
        assert len(keys) == issued_count
        assert sum(k["revoked_at"] is not None for k in keys) == revoked_count
        assert len(log) == len(notifications), "some event was applied twice or skipped"
        assert len({(r["originator_id"], r["originator_version"]) for r in log}) == len(notifications)
        assert sorted(r["topic"] for r in log) == sorted(topics)


def test_a_runner_that_loses_the_race_does_not_report_a_position_the_view_has_not_reached(
    backend: Backend,
) -> None:
    """Runner A reads events up to H1 while runner B, which read up to H0 < H1 before, holds
    the view's lock; B commits H0, A's batch is refused (correctly). A must then not claim H1."""
    with runtime_of(backend) as one, runtime_of(backend) as two:
        name = one.ctx.ledger.name
        runner_a, view_b = one.runner("api_keys"), two.runner("api_keys").view
        runner_a.catch_up()
        start = runner_a.view.position(name)  # stored; may trail the runner by ignored events
        _, h0 = append_key(one.ctx, "first")
        second_key, h1 = append_key(one.ctx, "second")
        items_b = [(one.ctx.ledger.mapper.to_domain_event(n), n.id)
                   for n in one.ctx.ledger.recorder.select_notifications(start=start + 1, limit=100)
                   if n.id <= h0 and runner_a.projection.wants(n)]
        result: dict[str, Any] = {}
        a_thread = threading.Thread(target=lambda: result.update(a=runner_a.catch_up()), daemon=True)

        def apply_while_a_waits(tx: Tx, event: Any, *position: int) -> None:
            # B holds the lock (it is inside process_batch): let A read and queue for the lock
            if not a_thread.is_alive() and "a" not in result:
                a_thread.start()
                deadline = time.monotonic() + 10
                # PostgreSQL: A waits for the view's advisory lock; SQLite: for the file's write lock
                while not _waits_in(a_thread, "lock_and_position", "_begin"):
                    assert time.monotonic() < deadline, "runner A never reached the view lock"
                    time.sleep(0.001)
            runner_a.projection.apply(tx, event, *position)

        assert view_b.process_batch(name, start, items_b, apply_while_a_waits, h0)
        a_thread.join(15)
        assert "a" in result
        position = runner_a.view.position(name)
        assert position >= h0  # B's batch committed; A's batch over the same events was refused

        reported = result["a"]
        runner_a.ensure(h1)  # what Context.save does right after saving the second key
        visible = get_key(one.ctx, second_key) is not None
        assert reported <= position and visible, (
            f"BUG: ProjectionRunner.catch_up lost the race to another runner (view at {position}) "
            f"but returned {reported} and reports reaching {runner_a.position()}; ensure({h1}) then returned "
            f"while key {second_key} is {'visible' if visible else 'NOT visible'} in the view "
            "(catch_up ignores process_batch's False and sets _known = last_id)"
        )


def _waits_in(thread: threading.Thread, *functions: str) -> bool:
    frame = sys._current_frames().get(thread.ident or -1)
    while frame is not None:
        if frame.f_code.co_name in functions:
            return True
        frame = frame.f_back
    return False


# (d) ensure ----------------------------------------------------------------------------------
def test_ensure_returns_after_the_row_is_visible(backend: Backend) -> None:
    with runtime_of(backend) as reader, runtime_of(backend) as writer:
        ctx = reader.ctx
        key_id, position = append_key(writer.ctx, "ensure-me")  # saved by another process
        assert get_key(ctx, key_id) is None  # nobody projected it yet
        ctx.api_keys.ensure(position)
        row = get_key(ctx, key_id)
        assert row is not None and row.key.name == "ensure-me"
        assert ctx.api_keys.view.position(ctx.ledger.name) >= position

        revoked_at = revoke_key(writer.ctx, key_id, "ensure-revoke")
        assert get_key(ctx, key_id).key.revoked_at is None  # type: ignore[union-attr]
        ctx.api_keys.ensure(revoked_at)
        assert get_key(ctx, key_id).key.revoked_at is not None  # type: ignore[union-attr]


def test_ensure_returns_at_once_when_reached_and_gives_up_on_a_position_never_reached(backend: Backend) -> None:
    with runtime_of(backend) as runtime:
        runner = runtime.runner("api_keys")
        reached = runner.catch_up()
        started = time.monotonic()
        runner.ensure(None)
        runner.ensure(reached)
        runner.ensure(1)
        assert time.monotonic() - started < 0.5
        with pytest.raises(ProjectionLagging):
            runner.ensure(head(runtime.ctx.ledger) + 100, timeout=0.05)


# (e) the library's one-event entry point -----------------------------------------------------
def test_process_event_applies_one_event_and_records_its_tracking(backend: Backend) -> None:
    with runtime_of(backend) as runtime:
        ctx = runtime.ctx
        admin = owner(ctx)
        made = [create_api_key(ctx, CreateApiKey(principal=admin, correlation_id=f"pe{n}")) for n in range(3)]
        revoke_api_key(ctx, RevokeApiKey(principal=admin, correlation_id="pe-revoke", key_id=made[0].key.id))
        before = rows_of(ctx.api_keys.runner)
        name = ctx.ledger.name
        projection = runtime.runner("api_keys").projection
        projection.view.reset(name)

        last = None
        for notification in all_notifications(ctx.ledger):
            event = ctx.ledger.mapper.to_domain_event(notification)
            projection.process_event(event, Tracking(application_name=name, notification_id=notification.id))
            assert projection.view.position(name) == notification.id
            last = (event, notification.id)
        assert rows_of(ctx.api_keys.runner) == before

        # the same event again is refused by the tracking record, and changes nothing
        assert last is not None and isinstance(last[0], ApiKey.Revoked)
        with pytest.raises(IntegrityError):
            projection.process_event(last[0], Tracking(application_name=name, notification_id=last[1]))
        assert rows_of(ctx.api_keys.runner) == before
        assert projection.view.position(name) == last[1]


def test_sqlite_read_models_sync_at_checkpoints_but_the_store_and_webhook_deliveries_at_each_commit(sqlite_backend):
    """A read model can be rebuilt from the store (its rows and position commit together), so
    it skips the per-commit sync; the store and the webhook deliveries (in no event) keep it."""
    def synchronous(datastore: Any) -> int:
        with datastore.transaction(commit=False) as cursor:
            cursor.execute("PRAGMA synchronous")
            return cursor.fetchone()[0]

    with runtime_of(sqlite_backend) as runtime:
        assert runtime.runners
        for runner in runtime.runners:
            assert synchronous(runner.view.datastore) == 1, runner.name  # NORMAL
        assert synchronous(runtime.ctx.ledger.recorder.datastore) == 2  # FULL
        assert runtime.deliveries is not None and synchronous(runtime.deliveries.view.datastore) == 2
