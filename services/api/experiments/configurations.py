"""Global parameters and device configurations: versioned documents of an instance."""

from typing import Any

from shared.db.models import ExperimentDeviceConfiguration
from shared.db.repositories.experiments import ExperimentRepository
from shared.kit.errors import ErrorCode, InvalidInput, NotFound, QRuntimeError

from .calls import Operations, Reply, etag, etag_matches
from .launch import global_values
from .schemas import SEGMENT, DeviceConfigurationBody, GlobalParametersBody, parse_body


class ConfigurationOperations(Operations):
    """Global parameter and device configuration calls, on the caller's transaction."""

    async def _get_globals(self, repo: ExperimentRepository, owner: str) -> Reply:
        row = await repo.configurations.global_parameters(owner)
        version = row.version if row else 0
        parameters = row.parameters if row else {}
        return Reply(200, {"parameters": parameters, "version": version}, {"ETag": etag(version)})

    async def _put_globals(
        self, repo: ExperimentRepository, owner: str, body: Any, if_match: str | None
    ) -> Reply:
        parameters = parse_body(GlobalParametersBody, body, "global parameters").parameters
        global_values(parameters)  # every expression evaluates, or the error names the parameter
        row = await repo.configurations.global_parameters(owner, lock=True)
        current = row.version if row else 0
        if if_match is not None and not etag_matches(if_match, current):
            raise QRuntimeError(
                ErrorCode.EXPERIMENT_PRECONDITION_FAILED,
                f"The global parameters changed: their ETag is now {etag(current)}, not {if_match}.",
                status=412,
            )
        version = await repo.configurations.set_global_parameters(owner, parameters)
        return Reply(200, {"parameters": parameters, "version": version}, {"ETag": etag(version)})

    async def _configuration(
        self, repo: ExperimentRepository, owner: str, name: str
    ) -> ExperimentDeviceConfiguration:
        configuration = await repo.configurations.device_configuration(owner, name)
        if configuration is None:
            raise configuration_not_found(name)
        return configuration

    async def _list_configurations(self, repo: ExperimentRepository, owner: str) -> Reply:
        rows = await repo.configurations.device_configurations(owner)
        return Reply(200, {"device_configurations": [configuration_view(row) for row in rows]})

    async def _put_configuration(self, repo: ExperimentRepository, owner: str, name: str, body: Any) -> Reply:
        request = parse_body(DeviceConfigurationBody, body, "device configuration")
        if request.backend not in self.catalog:
            raise InvalidInput(
                ErrorCode.BACKEND_NOT_FOUND,
                f"Backend '{request.backend}' is not served here; available: {', '.join(self.catalog)}.",
            )
        if request.shots is not None and request.shots > self.limits.max_shots:
            raise InvalidInput(
                ErrorCode.SHOTS_OUT_OF_RANGE, f"shots is {request.shots}; at most {self.limits.max_shots}."
            )
        existing = await repo.configurations.device_configuration(owner, name)
        current_default = await repo.configurations.default_configuration(owner, request.backend)
        # The first configuration of a backend is its default.
        is_default = request.default or current_default is None or current_default.name == name
        saved = await repo.configurations.put_device_configuration(
            ExperimentDeviceConfiguration(
                instance_id=owner,
                name=name,
                backend=request.backend,
                options=request.options,
                shots=request.shots,
                seed=request.seed,
                is_default=is_default,
            )
        )
        return Reply(201 if existing is None else 200, configuration_view(saved))


def configuration_name(name: str) -> str:
    if not SEGMENT.fullmatch(name) or len(name) > 128:
        raise InvalidInput(ErrorCode.INVALID_REQUEST, f"{name!r} is not a valid device configuration name.")
    return name


def configuration_not_found(name: str) -> NotFound:
    return NotFound(
        ErrorCode.DEVICE_CONFIGURATION_NOT_FOUND, f"Device configuration {name!r} does not exist."
    )


def configuration_view(row: ExperimentDeviceConfiguration) -> dict[str, Any]:
    return {
        "name": row.name,
        "backend": row.backend,
        "options": row.options,
        "shots": row.shots,
        "seed": row.seed,
        "default": row.is_default,
        "version": row.version,
    }
