"""Public ids without a hotspot: two `ledgerllm serve` processes on one PostgreSQL, 8 clients
creating keys and threads at once, get no 409 and no shared id; a rebuild keeps every id."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

from tests.support.process import get, running_server, send

CLIENTS = 8
EACH = 8  # keys and threads per client


def _listing(url: str, admin: str, workspace: str) -> tuple[dict[str, int], dict[str, int]]:
    keys = json.loads(get(url + "/api/system/api-keys", admin)[1])["apiKeys"]
    threads = json.loads(get(url + f"/api/v1/workspace/{workspace}/threads", admin)[1])["threads"]
    return {k["name"]: k["id"] for k in keys if k["name"]}, {t["slug"]: t["id"] for t in threads}


def test_concurrent_creation_on_two_servers_gives_unique_ids_and_no_409(pg_backend, tmp_path):
    with running_server(pg_backend, tmp_path / "a.log") as a, running_server(pg_backend, tmp_path / "b.log") as b:
        admin = pg_backend.cli("api-keys", "create").stdout.strip()
        status, body = send("POST", a.url + "/api/v1/workspace/new", admin, b'{"name": "ids"}')
        assert status == 200, body
        workspace = json.loads(body)["workspace"]["slug"]

        def client(n: int) -> list[tuple[str, int, int, int]]:
            url = (a, b)[n % 2].url
            made = []
            for i in range(EACH):
                status, body = send("POST", url + "/api/system/generate-api-key", admin,
                                    json.dumps({"name": f"k-{n}-{i}"}).encode())
                made.append(("key", status, json.loads(body)["apiKey"]["id"] if status == 200 else -1, n))
                status, body = send("POST", url + f"/api/v1/workspace/{workspace}/thread/new", admin,
                                    json.dumps({"name": f"t-{n}-{i}", "slug": f"t-{n}-{i}"}).encode())
                made.append(("thread", status, json.loads(body)["thread"]["id"] if status == 200 else -1, n))
            return made

        with ThreadPoolExecutor(CLIENTS) as pool:
            made = [m for ms in pool.map(client, range(CLIENTS)) for m in ms]
        statuses = sorted({s for _, s, _, _ in made})
        assert statuses == [200], [m for m in made if m[1] != 200][:5]
        key_ids = [i for kind, _, i, _ in made if kind == "key"]
        thread_ids = [i for kind, _, i, _ in made if kind == "thread"]
        assert len(key_ids) == len(set(key_ids)) == CLIENTS * EACH
        assert len(thread_ids) == len(set(thread_ids)) == CLIENTS * EACH
        # ids stay small integers like upstream's: blocks lose at most a few per process
        assert max(key_ids) <= CLIENTS * EACH + 2 * 20 + 1 and min(key_ids) >= 1

        before = _listing(b.url, admin, workspace)
        assert before == _listing(a.url, admin, workspace)
        assert sorted(before[0].values()) == sorted(key_ids) and sorted(before[1].values()) == sorted(thread_ids)
        pg_backend.cli("projections", "rebuild", "--all")
        assert _listing(a.url, admin, workspace) == before
        assert _listing(b.url, admin, workspace) == before
    verify = pg_backend.cli("verify")
    assert "equal their rebuild" in verify.stderr
