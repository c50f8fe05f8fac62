"""/api/v1 backends, providers, devices and usage in-process: what is served here, and the refusals."""

from shared.jobs.states import JobStatus
from tests.endpoints.conftest import refusal as refused
from tests.inprocess import add_executor, add_instance, add_job, ago


async def test_backends_list_configuration_properties_status(client, people, db):
    h = people.alice.headers
    await add_executor(db, backend="fake_manila")
    await add_job(db, backend="fake_manila")
    await db.commit()
    devices = {d["name"]: d for d in (await client.get("/api/v1/backends", headers=h)).json()["devices"]}
    assert (
        devices["fake_manila"]["status"]["name"] == "online" and devices["fake_manila"]["queue_length"] == 1
    )
    assert devices["aer_simulator"]["status"]["name"] == "offline"  # no executor serves it
    configuration = (await client.get("/api/v1/backends/fake_manila/configuration", headers=h)).json()
    assert configuration["n_qubits"] == 5
    assert (await client.get("/api/v1/backends/fake_manila/properties", headers=h)).status_code == 200
    status = (await client.get("/api/v1/backends/fake_manila/status", headers=h)).json()
    assert status["state"] is True and status["length_queue"] == 1
    offline = (await client.get("/api/v1/backends/aer_simulator/status", headers=h)).json()
    assert offline["state"] is False and offline["status"] == "internal"
    for route in ("configuration", "properties", "status"):
        refused(
            await client.get(f"/api/v1/backends/ibm_nowhere/{route}", headers=h), 404, 1007, "ibm_nowhere"
        )
    refused(await client.get("/api/v1/backends"), 401, 3200)


async def test_providers_and_devices(client, people, db):
    h = people.alice.headers
    await add_executor(db, backend="fake_manila")
    await db.commit()
    providers = {p["name"]: p for p in (await client.get("/api/v1/providers", headers=h)).json()}
    assert providers["IBM"]["devices"] == ["aer_simulator", "fake_manila"]
    devices = (await client.get("/api/v1/devices", params={"min_qubits": 6}, headers=h)).json()
    assert [d["name"] for d in devices["devices"]] == ["aer_simulator"] and devices["count"] == 1
    assert (await client.get("/api/v1/devices", params={"provider": "AWS"}, headers=h)).json()["count"] == 0
    assert (await client.get("/api/v1/devices", params={"is_simulator": "false"}, headers=h)).json()[
        "count"
    ] == 0
    refused(
        await client.get("/api/v1/devices", params={"provider": "nowhere"}, headers=h), 404, 3404, "nowhere"
    )
    refused(
        await client.get("/api/v1/devices", params={"min_qubits": "many"}, headers=h), 400, 1200, "min_qubits"
    )
    manila = (await client.get("/api/v1/devices/fake_manila", headers=h)).json()
    assert manila["num_qubits"] == 5 and manila["status"] == "online" and manila["noise"] == "fake_manila"
    refused(await client.get("/api/v1/devices/nope", headers=h), 404, 1007)


async def test_provider_credentials_are_sealed_and_never_returned(client, people, db):
    from shared.db.repositories.credentials import CredentialRepository

    h = people.alice.headers
    token = "ibm-cloud-api-key-0123456789"
    url = "/api/v1/providers/IBM/credentials"
    assert (await client.get(url, headers=h)).json()["configured"] is False
    assert (await client.put(url, json={"token": token}, headers=h)).status_code == 204
    status = await client.get(url, headers=h)
    assert status.json()["configured"] is True and token not in status.text
    stored = await CredentialRepository(db).get(people.alice.user.id, "IBM")
    assert stored is not None and token not in stored.token_encrypted
    assert (await client.delete(url, headers=h)).status_code == 204
    assert (await client.get(url, headers=h)).json()["configured"] is False
    refused(await client.put(url, json={}, headers=h), 400, 1200, "token")
    for response in (
        await client.put("/api/v1/providers/NOWHERE/credentials", json={"token": "t"}, headers=h),
        await client.get("/api/v1/providers/NOWHERE/credentials", headers=h),
        await client.delete("/api/v1/providers/NOWHERE/credentials", headers=h),
    ):
        refused(response, 404, 3404, "NOWHERE")
    tokenless = [name for name, p in (await _providers(client, h)).items() if not p["with_token"]]
    if tokenless:
        refused(
            await client.put(f"/api/v1/providers/{tokenless[0]}/credentials", json={"token": "t"}, headers=h),
            400,
            1200,
            "takes no token",
        )


async def _providers(client, headers) -> dict:
    return {p["name"]: p for p in (await client.get("/api/v1/providers", headers=headers)).json()}


async def test_instance_usage(client, people, db):
    instance = await add_instance(db, members=(people.loner.user,), allocation=10.0)
    await add_job(
        db,
        instance_id=instance.id,
        status=JobStatus.DONE,
        execution_seconds=12.0,
        started_at=ago(20),
        finished_at=ago(5),
    )
    await db.commit()
    usage = (
        await client.get(
            "/api/v1/instances/usage", headers={**people.loner.headers, "Service-CRN": instance.crn}
        )
    ).json()
    assert usage["instance"] == instance.crn and usage["usage_consumed_seconds"] == 12.0
    assert usage["usage_remaining_seconds"] == 0.0 and usage["usage_limit_reached"] is True
    unlimited = (await client.get("/api/v1/instances/usage", headers=people.alice.headers)).json()
    assert unlimited["usage_allocation_seconds"] is None and unlimited["usage_limit_reached"] is False
    nowhere = (await client.get("/api/v1/instances/usage", headers=people.admin.headers)).json()
    assert nowhere["instance"] is None
    refused(
        await client.get(
            "/api/v1/instances/usage", headers={**people.alice.headers, "Service-CRN": instance.crn}
        ),
        403,
        3207,
    )
