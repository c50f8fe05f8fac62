"""docker-compose.yml, checked without a Docker engine: every qruntime service runs a real `qruntime`
subcommand, its environment names are settings fields with valid values, ports and URLs agree with
the settings and with the other services, health checks gate the start order, data is on volumes."""

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy.engine import make_url

from shared.kit.settings import Settings

COMPOSE_FILE = Path(__file__).resolve().parents[2] / "docker-compose.yml"

# The Compose specification's service keys, to catch a misspelt one (Compose would refuse it).
SERVICE_KEYS = {
    "annotations", "attach", "build", "blkio_config", "cap_add", "cap_drop", "cgroup", "cgroup_parent",
    "command", "configs", "container_name", "cpu_count", "cpu_percent", "cpu_period", "cpu_quota",
    "cpu_rt_period", "cpu_rt_runtime", "cpu_shares", "cpus", "cpuset", "depends_on", "deploy", "develop",
    "device_cgroup_rules", "devices", "dns", "dns_opt", "dns_search", "domainname", "entrypoint", "env_file",
    "environment", "expose", "extends", "external_links", "extra_hosts", "group_add", "healthcheck",
    "hostname", "image", "init", "ipc", "isolation", "labels", "links", "logging", "mac_address",
    "mem_limit", "mem_reservation", "mem_swappiness", "memswap_limit", "network_mode", "networks",
    "oom_kill_disable", "oom_score_adj", "pid", "pids_limit", "platform", "ports", "privileged",
    "profiles", "pull_policy", "read_only", "restart", "runtime", "scale", "secrets", "security_opt",
    "shm_size", "stdin_open", "stop_grace_period", "stop_signal", "storage_opt", "sysctls", "tmpfs",
    "tty", "ulimits", "user", "userns_mode", "uts", "volumes", "volumes_from", "working_dir",
}  # fmt: skip
TOP_LEVEL_KEYS = {"name", "services", "volumes", "networks", "secrets", "configs", "include", "version"}
HEALTHCHECK_KEYS = {"test", "interval", "timeout", "retries", "start_period", "start_interval", "disable"}
DEPENDS_CONDITIONS = {"service_started", "service_healthy", "service_completed_successfully"}

INTERPOLATION = re.compile(r"\$\{(?P<name>\w+)(?P<op>:?[-?])?(?P<default>[^}]*)\}")


def interpolate(value: Any) -> Any:
    """Resolve ${VAR:-default} as `docker compose up` does on a machine where VAR is unset."""
    if isinstance(value, dict):
        return {k: interpolate(v) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v) for v in value]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match[str]) -> str:
        assert match["op"] in (":-", "-"), f"${{{match['name']}}} needs a default so a bare `up` works"
        return match["default"]

    return INTERPOLATION.sub(substitute, value)


@pytest.fixture(scope="module")
def raw() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_FILE.read_text())


@pytest.fixture(scope="module")
def services(raw: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return interpolate(raw["services"])


def is_qruntime(service: dict[str, Any]) -> bool:
    """Built from this repository's Dockerfile, whose entrypoint is `qruntime`."""
    return "build" in service


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: str(v) for k, v in env.items()}


def healthcheck_url(service: dict[str, Any]) -> tuple[int, str]:
    test = " ".join(service["healthcheck"]["test"])
    match = re.search(r"http://127\.0\.0\.1:(\d+)(/\w+)", test)
    assert match, f"no health URL in {test}"
    return int(match[1]), match[2]


def qruntime_services(services: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {name: s for name, s in services.items() if is_qruntime(s)}


def test_the_file_uses_only_known_keys(raw: dict[str, Any]) -> None:
    unknown = {k for k in raw if not k.startswith("x-")} - TOP_LEVEL_KEYS
    assert not unknown, unknown
    assert "version" not in raw, "the version key is obsolete in the Compose specification"
    for name, service in raw["services"].items():
        assert set(service) <= SERVICE_KEYS, f"{name}: {sorted(set(service) - SERVICE_KEYS)}"
        if "healthcheck" in service:
            assert set(service["healthcheck"]) <= HEALTHCHECK_KEYS, name
        for dependency, condition in (service.get("depends_on") or {}).items():
            assert dependency in raw["services"], f"{name} depends on unknown {dependency}"
            assert condition["condition"] in DEPENDS_CONDITIONS, name


def test_every_qruntime_command_is_a_real_subcommand(
    services: dict[str, dict[str, Any]], parse_qruntime_args: Callable[[list[str]], Any]
) -> None:
    commands: dict[str, list[str]] = {}
    for name, service in qruntime_services(services).items():
        assert "entrypoint" not in service, f"{name}: keep the image's qruntime entrypoint"
        command = service["command"]
        assert isinstance(command, list), f"{name}: exec form, so arguments are never re-split"
        args = parse_qruntime_args(command)
        commands.setdefault(args.command, []).extend(getattr(args, "backend", None) or [])
    assert set(commands) == {"migrate", "api", "scheduler", "executor"}
    assert sorted(commands["executor"]) == ["aer_simulator", "fake_manila"]


def test_environment_names_are_settings_fields_and_values_parse(
    services: dict[str, dict[str, Any]],
    setting_env_names: set[str],
    settings_from_env: Callable[[dict[str, str]], Settings],
) -> None:
    for name, service in qruntime_services(services).items():
        env = environment(service)
        names = {k for k in env if k.startswith("QRUNTIME_")}
        assert {"QRUNTIME_DATABASE_URL", "QRUNTIME_AMQP_URL"} <= names, name
        assert names <= setting_env_names, f"{name}: not settings: {sorted(names - setting_env_names)}"
        settings = settings_from_env(env)  # raises on a value of the wrong type
        args = service["command"]
        if args[0] == "executor":
            for backend in args[args.index("--backend") + 1 :: 2]:
                assert backend in settings.backends, f"{name}: {backend} not in QRUNTIME_BACKENDS"


def test_ports_and_health_checks_match_the_settings(
    services: dict[str, dict[str, Any]], settings_from_env: Callable[[dict[str, str]], Settings]
) -> None:
    for name, service in qruntime_services(services).items():
        settings = settings_from_env(environment(service))
        role = service["command"][0]
        if role == "migrate":
            assert service["restart"] == "no" and service["healthcheck"] == {"disable": True}
            assert "ports" not in service
            continue
        port, path = healthcheck_url(service)
        if role == "api":
            assert settings.api_host == "0.0.0.0", "the api must listen beyond the container's loopback"
            published = [str(p).split(":") for p in service["ports"]]
            assert [[str(settings.api_port), str(settings.api_port)]] == [p[-2:] for p in published]
            # Development mode is published on this machine's loopback only, unless told otherwise.
            assert [p[0] for p in published] == ["127.0.0.1"]
            assert (port, path) in {(settings.api_port, "/healthz"), (settings.api_port, "/readyz")}
        else:
            assert settings.health_port is not None, f"{name}: set QRUNTIME_HEALTH_PORT for its health check"
            assert (port, path) == (settings.health_port, "/healthz"), name
            assert "ports" not in service, f"{name} serves nothing to the outside"


def test_every_long_running_service_has_a_health_check(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        if service.get("restart") == "no":
            continue
        check = service.get("healthcheck") or {}
        assert check.get("test") and not check.get("disable"), f"{name} has no health check"
        assert service["restart"] in ("unless-stopped", "always", "on-failure"), name


def test_start_order_is_gated_on_health(services: dict[str, dict[str, Any]]) -> None:
    def needs(name: str) -> dict[str, str]:
        return {k: v["condition"] for k, v in (services[name].get("depends_on") or {}).items()}

    assert needs("migrate") == {"postgres": "service_healthy"}
    for name in qruntime_services(services):
        if name != "migrate":
            assert needs(name).get("migrate") == "service_completed_successfully", name
            assert needs(name).get("rabbitmq") == "service_healthy", name


def test_connection_urls_point_at_the_compose_services(services: dict[str, dict[str, Any]]) -> None:
    postgres = environment(services["postgres"])
    rabbitmq = environment(services["rabbitmq"])
    for name, service in qruntime_services(services).items():
        env = environment(service)
        database = make_url(env["QRUNTIME_DATABASE_URL"])
        assert database.drivername == "postgresql+asyncpg", name
        assert (database.host, database.port) == ("postgres", 5432)
        assert database.username == postgres["POSTGRES_USER"]
        assert database.password == postgres["POSTGRES_PASSWORD"]
        assert database.database == postgres["POSTGRES_DB"]
        broker = re.fullmatch(r"amqp://([^:]+):([^@]+)@([\w.-]+):(\d+)/", env["QRUNTIME_AMQP_URL"])
        assert broker, env["QRUNTIME_AMQP_URL"]
        assert broker.groups() == (
            rabbitmq["RABBITMQ_DEFAULT_USER"],
            rabbitmq["RABBITMQ_DEFAULT_PASS"],
            "rabbitmq",
            "5672",
        )
    assert "management" in services["rabbitmq"]["image"], "the management plugin (UI and HTTP API)"


def test_data_lives_on_named_volumes(raw: dict[str, Any], services: dict[str, dict[str, Any]]) -> None:
    declared = set(raw.get("volumes") or {})
    used = set()
    for name, service in services.items():
        for volume in service.get("volumes") or []:
            source = volume.split(":", 1)[0] if isinstance(volume, str) else volume["source"]
            assert not source.startswith((".", "/")), f"{name}: use a named volume, not a host path"
            used.add(source)
    assert used == declared
    assert any(v.endswith(":/var/lib/postgresql/data") for v in services["postgres"]["volumes"])
    assert any(v.endswith(":/var/lib/rabbitmq") for v in services["rabbitmq"]["volumes"])


def test_qruntime_containers_match_the_cluster_hardening(services: dict[str, dict[str, Any]]) -> None:
    for name, service in qruntime_services(services).items():
        assert service.get("read_only") is True, name
        assert "/tmp" in service.get("tmpfs", []), name
        assert "user" not in service or service["user"] not in ("0", "root"), name
        if service["command"][0] == "executor":
            # Time to finish the running job after `docker compose stop`.
            assert re.fullmatch(r"\d+m", service["stop_grace_period"]), name


def test_images_are_pinned(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        if not is_qruntime(service):
            assert re.search(r":\d+\.\d+(\.\d+)?[\w.-]*$", service["image"]), f"{name}: {service['image']}"
