"""The server fixtures start real servers and isolate tests from each other."""

import psycopg
import pytest
import redis


def test_pg_url_accepts_queries(pg_url: str) -> None:
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("select 1").fetchone() == (1,)


# Run twice: if both runs got the same database, the second would find the
# table the first one created.
@pytest.mark.parametrize("run", [1, 2])
def test_pg_url_is_a_new_database_per_test(pg_url: str, run: int) -> None:
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("select to_regclass('marker')").fetchone() == (None,)
        conn.execute("create table marker (run int)")
        assert conn.execute("select current_database()").fetchone()[0] == pg_url.rsplit("/", 1)[1]


# Run twice: the key written by the first run must be flushed before the second.
@pytest.mark.parametrize("run", [1, 2])
def test_redis_url_round_trip(redis_url: str, run: int) -> None:
    with redis.Redis.from_url(redis_url) as client:
        assert client.get("greeting") is None
        client.set("greeting", "hello")
        assert client.get("greeting") == b"hello"
