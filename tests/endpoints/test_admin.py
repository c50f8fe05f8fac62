"""/api/v1/admin in-process: administrators only, and every refusal of the admin operations."""

from tests.endpoints.conftest import refusal as refused


async def test_every_admin_route_refuses_a_non_administrator(client, people):
    h = people.alice.headers
    for response in (
        await client.get("/api/v1/admin/users", headers=h),
        await client.post("/api/v1/admin/users", json={"name": "x"}, headers=h),
        await client.post("/api/v1/admin/users/x/keys", headers=h),
        await client.delete("/api/v1/admin/keys/x", headers=h),
        await client.get("/api/v1/admin/instances", headers=h),
        await client.post("/api/v1/admin/instances", json={"name": "x"}, headers=h),
        await client.patch("/api/v1/admin/instances/x", json={}, headers=h),
        await client.post("/api/v1/admin/instances/x/members", json={"user": "x"}, headers=h),
    ):
        refused(response, 403, 3207, "administrator")
    refused(await client.get("/api/v1/admin/users"), 401, 3200)


async def test_users_and_keys(client, people):
    h = people.admin.headers
    created = await client.post("/api/v1/admin/users", json={"name": "erin"}, headers=h)
    assert created.status_code == 201 and created.json()["role"] == "user"
    assert "erin" in {u["name"] for u in (await client.get("/api/v1/admin/users", headers=h)).json()}
    refused(await client.post("/api/v1/admin/users", json={"name": "erin"}, headers=h), 409, 3409, "erin")
    refused(
        await client.post("/api/v1/admin/users", json={"name": "no spaces"}, headers=h), 400, 1200, "name"
    )
    refused(await client.post("/api/v1/admin/users", json={}, headers=h), 400, 1200, "name")
    key = await client.post("/api/v1/admin/users/erin/keys", headers=h)
    assert key.status_code == 201 and key.json()["api_key"].startswith("qrt_")
    refused(await client.post("/api/v1/admin/users/nobody/keys", headers=h), 404, 3404, "nobody")
    # The new key works until it is revoked; revoking twice answers the same.
    as_erin = {"Authorization": f"apikey {key.json()['api_key']}"}
    assert (await client.get("/api/v1/jobs", headers=as_erin)).status_code == 200
    revoked = await client.delete(f"/api/v1/admin/keys/{key.json()['id']}", headers=h)
    assert revoked.status_code == 200 and revoked.json()["revoked_at"] is not None
    assert (await client.delete(f"/api/v1/admin/keys/{key.json()['id']}", headers=h)).status_code == 200
    refused(await client.get("/api/v1/jobs", headers=as_erin), 401, 3201, "revoked")
    refused(await client.delete("/api/v1/admin/keys/nokey", headers=h), 404, 3404)


async def test_instances_limits_and_members(client, people):
    h = people.admin.headers
    made = await client.post(
        "/api/v1/admin/instances", json={"name": "lab-z", "max_concurrent_jobs": 2}, headers=h
    )
    assert made.status_code == 201 and made.json()["max_concurrent_jobs"] == 2
    assert "lab-z" in {i["name"] for i in (await client.get("/api/v1/admin/instances", headers=h)).json()}
    refused(await client.post("/api/v1/admin/instances", json={"name": "lab-z"}, headers=h), 409, 3409)
    refused(await client.post("/api/v1/admin/instances", json={"name": "bad name"}, headers=h), 400, 1200)
    refused(
        await client.post(
            "/api/v1/admin/instances", json={"name": "n1", "usage_allocation_seconds": -1}, headers=h
        ),
        400,
        1200,
        "usage_allocation_seconds",
    )
    refused(
        await client.post(
            "/api/v1/admin/instances", json={"name": "n2", "max_concurrent_jobs": 0}, headers=h
        ),
        400,
        1200,
        "max_concurrent_jobs",
    )
    patched = await client.patch(
        "/api/v1/admin/instances/lab-z",
        json={"max_concurrent_jobs": None, "usage_allocation_seconds": 60},
        headers=h,
    )
    assert patched.status_code == 200 and patched.json()["max_concurrent_jobs"] is None
    assert patched.json()["usage_allocation_seconds"] == 60
    refused(
        await client.patch("/api/v1/admin/instances/lab-z", json={"usage_allocation_seconds": -5}, headers=h),
        400,
        1200,
    )
    refused(
        await client.patch("/api/v1/admin/instances/lab-z", json={"max_concurrent_jobs": 1.5}, headers=h),
        400,
        1200,
    )
    refused(await client.patch("/api/v1/admin/instances/nowhere", json={}, headers=h), 404, 3404, "nowhere")
    member = await client.post(
        "/api/v1/admin/instances/lab-z/members", json={"user": people.loner.user.name}, headers=h
    )
    assert member.status_code == 204
    refused(
        await client.post("/api/v1/admin/instances/nowhere/members", json={"user": "x"}, headers=h), 404, 3404
    )
    refused(
        await client.post("/api/v1/admin/instances/lab-z/members", json={"user": "nobody"}, headers=h),
        404,
        3404,
    )
    refused(await client.post("/api/v1/admin/instances/lab-z/members", json={}, headers=h), 400, 1200)
