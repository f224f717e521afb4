"""Invites over HTTP: checking a code answers 200 either way (as upstream), and claiming one
makes a `default` user who is a member of the invite's workspaces that still exist."""

from __future__ import annotations

from tests.support.app import bearer, multi_user_keys


def _workspace(client, admin: dict[str, str], name: str) -> int:
    made = client.post("/api/v1/workspace/new", headers=admin, json={"name": name})
    assert made.status_code == 200, made.text
    return made.json()["workspace"]["id"]


def _member_ids(client, admin: dict[str, str], workspace_id: int) -> set[int]:
    listed = client.get(f"/api/v1/admin/workspaces/{workspace_id}/users", headers=admin)
    assert listed.status_code == 200, listed.text
    return {u["userId"] for u in listed.json()["users"]}


def test_claiming_an_invite_joins_its_workspaces(client, backend):
    admin = bearer(multi_user_keys(client)["admin"])
    first, second, other = (_workspace(client, admin, n) for n in ("Invited One", "Invited Two", "Not Invited"))
    gone = _workspace(client, admin, "Deleted Later")
    invite = client.post("/api/v1/admin/invite/new", headers=admin,
                         json={"workspaceIds": [first, second, gone, 999_999]}).json()["invite"]
    assert client.delete("/api/v1/workspace/deleted-later", headers=admin).status_code == 200

    claimed = client.post(f"/api/invite/{invite['code']}", json={"username": "joiner", "password": "joiner-password"})
    assert claimed.status_code == 200 and claimed.json() == {"success": True, "error": None}
    user_id = next(u["id"] for u in client.get("/api/v1/admin/users", headers=admin).json()["users"]
                   if u["username"] == "joiner")
    assert user_id in _member_ids(client, admin, first) and user_id in _member_ids(client, admin, second)
    assert user_id not in _member_ids(client, admin, other)
    # one atomic save: the user, the claim and both memberships, all by the new user
    events = backend.raw_events()
    claim = next(e for e in events if e["topic"].endswith("Invite.Claimed"))
    joined = [e for e in events if e["topic"].endswith("Workspace.MembersChanged") and e["position"] > claim["position"]]
    assert len(joined) == 2 and all(e["state"]["added"] == [user_id] for e in joined)
    assert all(e["state"]["actor_user_id"] == user_id for e in joined)

    listed = client.get("/api/v1/admin/invites", headers=admin).json()["invites"]
    assert listed[0]["status"] == "claimed" and listed[0]["claimedBy"] == {"id": user_id, "username": "joiner"}


def test_checking_an_invite_answers_200_as_upstream(client):
    admin = bearer(multi_user_keys(client)["admin"])
    code = client.post("/api/v1/admin/invite/new", headers=admin).json()["invite"]["code"]
    assert client.get(f"/api/invite/{code}").json() == {"invite": {"code": code, "status": "pending"}, "error": None}
    unknown = client.get("/api/invite/not-a-code")
    assert unknown.status_code == 200 and unknown.json() == {"invite": None, "error": "Invite not found."}
    client.post(f"/api/invite/{code}", json={"username": "once", "password": "once-password"})
    used = client.get(f"/api/invite/{code}")
    assert used.status_code == 200 and used.json() == {"invite": None, "error": "Invite is no longer valid."}
    again = client.post(f"/api/invite/{code}", json={"username": "twice", "password": "twice-password"})
    assert again.status_code == 200 and again.json()["success"] is False  # upstream: 200 {success: false}
