"""ExperimentConfigurationRepository: an instance's global parameters and device configurations, on
the real schema (and reached from ExperimentRepository as `.configurations`)."""

import secrets

from shared.db.models import ExperimentDeviceConfiguration
from shared.db.repositories.experiment_configurations import ExperimentConfigurationRepository
from shared.db.repositories.experiments import ExperimentRepository


def owner() -> str:
    return f"inst-{secrets.token_hex(4)}"


async def test_the_experiment_repository_reaches_them_in_its_unit_of_work(db):
    configurations = ExperimentRepository(db).configurations
    assert isinstance(configurations, ExperimentConfigurationRepository) and configurations.session is db


async def test_global_parameters_replace_and_count_versions(db):
    repo, me = ExperimentConfigurationRepository(db), owner()
    assert await repo.global_parameters(me) is None
    assert await repo.set_global_parameters(me, {"f": "1"}) == 1
    assert await repo.set_global_parameters(me, {"g": "2"}) == 2
    stored = await repo.global_parameters(me, lock=True)
    assert stored.parameters == {"g": "2"} and stored.version == 2
    assert await repo.global_parameters(owner()) is None


async def test_device_configurations_and_the_default_per_backend(db):
    repo, me = ExperimentConfigurationRepository(db), owner()

    def configuration(name, backend="fake_manila", default=False, shots=None):
        return ExperimentDeviceConfiguration(
            instance_id=me, name=name, backend=backend, options={}, shots=shots, seed=None, is_default=default
        )

    first = await repo.put_device_configuration(configuration("a", default=True))
    assert first.version == 1 and first.is_default
    await repo.put_device_configuration(configuration("b", default=True))
    assert (await repo.default_configuration(me, "fake_manila")).name == "b"
    assert (await repo.device_configuration(me, "a")).is_default is False
    replaced = await repo.put_device_configuration(configuration("a", shots=99))
    assert replaced.version == 2 and replaced.shots == 99
    await repo.put_device_configuration(configuration("c", backend="aer_simulator"))
    assert [c.name for c in await repo.device_configurations(me)] == ["a", "b", "c"]
    assert await repo.default_configuration(me, "aer_simulator") is None
    assert await repo.delete_device_configuration(me, "a") is True
    assert await repo.delete_device_configuration(me, "a") is False
    assert await repo.device_configuration(me, "a") is None
    assert await repo.device_configurations(owner()) == []
