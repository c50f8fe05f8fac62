"""CredentialRepository: one encrypted token per user and provider."""

from shared.db.repositories.credentials import CredentialRepository


async def test_put_replaces_get_and_delete(db):
    credentials = CredentialRepository(db)
    assert await credentials.get("cu1", "ibm") is None
    await credentials.put("cu1", "ibm", "sealed-1")
    await credentials.put("cu1", "ibm", "sealed-2")  # an upsert, not a second row
    await credentials.put("cu2", "ibm", "sealed-other")
    found = await credentials.get("cu1", "ibm")
    assert found is not None and found.token_encrypted == "sealed-2"
    assert await credentials.delete("cu1", "ibm") is True
    assert await credentials.delete("cu1", "ibm") is False
    assert await credentials.get("cu1", "ibm") is None
    assert (await credentials.get("cu2", "ibm")).token_encrypted == "sealed-other"
