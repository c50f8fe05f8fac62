"""deploy/k8s: both overlays render with `kubectl kustomize`, every built-in object validates offline
against the strict Kubernetes schemas (unknown fields rejected), the custom resources (KEDA,
CloudNativePG, RabbitMQ) against schemas of their own below, and the objects agree with each other
and with the app: commands, settings, queues, probes, references, hardening, network exposure."""

import base64
import copy
import os
import re
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from shared.kit.settings import Settings

K8S_DIR = Path(__file__).resolve().parents[2] / "deploy" / "k8s"
OVERLAYS = ("dev", "prod")
# The oldest Kubernetes the manifests promise to work on, and the newest the schemas know.
K8S_VERSIONS = ("1.29", kubernetes_validate.utils.latest_version())
APP = "qruntime"
CONFIG_MAP = "qruntime-config"
RELEASE_STEP_LABEL = "qruntime.io/release-step"

# ---------------------------------------------------------------------------------------------------
# Rendering


def kubectl() -> str:
    path = shutil.which("kubectl")
    assert path, "kubectl is required to render deploy/k8s (it ships on every machine of this kind)"
    return path


def render(directory: Path) -> list[dict[str, Any]]:
    result = subprocess.run(
        [kubectl(), "kustomize", str(directory)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, f"kubectl kustomize {directory} failed:\n{result.stderr}"
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


@pytest.fixture(scope="module")
def rendered() -> dict[str, list[dict[str, Any]]]:
    return {name: render(K8S_DIR / "overlays" / name) for name in OVERLAYS}


@pytest.fixture(params=OVERLAYS)
def objects(request: pytest.FixtureRequest, rendered: dict[str, list[dict[str, Any]]]) -> list[dict]:
    return rendered[request.param]


# ---------------------------------------------------------------------------------------------------
# Custom resources: the required fields and the shape of what we use. additionalProperties=false
# wherever we write fields, so that a misspelt one fails here instead of being ignored by the
# operator (KEDA ignores unknown trigger metadata keys, for one).

STRING = {"type": "string"}
INT = {"type": "integer"}
NON_NEGATIVE = {"type": "integer", "minimum": 0}
RESOURCES = {
    "type": "object",
    "additionalProperties": False,
    "properties": {"requests": {"type": "object"}, "limits": {"type": "object"}, "claims": {"type": "array"}},
}


def crd_schema(spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "properties": {
            "apiVersion": STRING,
            "kind": STRING,
            "metadata": {
                "type": "object",
                "required": ["name"],
                "properties": {
                    "name": {"type": "string", "pattern": r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"},
                    "labels": {"type": "object", "additionalProperties": STRING},
                },
            },
            "spec": spec,
        },
        "additionalProperties": False,
    }


SCALED_OBJECT = crd_schema(
    {
        "type": "object",
        "required": ["scaleTargetRef", "triggers"],
        "additionalProperties": False,
        "properties": {
            "scaleTargetRef": {
                "type": "object",
                "required": ["name"],
                "additionalProperties": False,
                "properties": {
                    "name": STRING,
                    "kind": STRING,
                    "apiVersion": STRING,
                    "envSourceContainerName": STRING,
                },
            },
            "pollingInterval": {"type": "integer", "minimum": 1},
            "cooldownPeriod": NON_NEGATIVE,
            "initialCooldownPeriod": NON_NEGATIVE,
            "idleReplicaCount": NON_NEGATIVE,
            "minReplicaCount": NON_NEGATIVE,
            "maxReplicaCount": {"type": "integer", "minimum": 1},
            "fallback": {
                "type": "object",
                "required": ["failureThreshold", "replicas"],
                "properties": {"failureThreshold": INT, "replicas": INT},
            },
            "advanced": {
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    "restoreToOriginalReplicaCount": {"type": "boolean"},
                    "scalingModifiers": {"type": "object"},
                    "horizontalPodAutoscalerConfig": {
                        "type": "object",
                        "additionalProperties": False,
                        # behavior is checked against the HorizontalPodAutoscaler schema below.
                        "properties": {"name": STRING, "behavior": {"type": "object"}},
                    },
                },
            },
            "triggers": {
                "type": "array",
                "minItems": 1,
                "items": {
                    "type": "object",
                    "required": ["type", "metadata"],
                    "additionalProperties": False,
                    "properties": {
                        "type": STRING,
                        "name": STRING,
                        "useCachedMetrics": {"type": "boolean"},
                        "metricType": {"enum": ["AverageValue", "Value", "Utilization"]},
                        # KEDA takes map[string]string: a bare number would be refused by the API server.
                        "metadata": {"type": "object", "additionalProperties": STRING},
                        "authenticationRef": {
                            "type": "object",
                            "required": ["name"],
                            "additionalProperties": False,
                            "properties": {
                                "name": STRING,
                                "kind": {"enum": ["TriggerAuthentication", "ClusterTriggerAuthentication"]},
                            },
                        },
                    },
                },
            },
        },
    }
)

# The metadata the KEDA rabbitmq scaler reads (keda.sh docs, "RabbitMQ Queue").
RABBITMQ_TRIGGER_METADATA = {
    "type": "object",
    "required": ["queueName", "mode", "value"],
    "additionalProperties": False,
    "properties": {
        "host": STRING,
        "hostFromEnv": STRING,
        "usernameFromEnv": STRING,
        "passwordFromEnv": STRING,
        "protocol": {"enum": ["auto", "http", "amqp"]},
        "mode": {"enum": ["QueueLength", "MessageRate"]},
        "value": {"type": "string", "pattern": r"^\d+(\.\d+)?$"},
        "activationValue": {"type": "string", "pattern": r"^\d+(\.\d+)?$"},
        "queueName": STRING,
        "vhostName": STRING,
        "useRegex": {"enum": ["true", "false"]},
        "pageSize": STRING,
        "operation": {"enum": ["sum", "max", "avg"]},
        "timeout": STRING,
        "excludeUnacknowledged": {"enum": ["true", "false"]},
        "unsafeSsl": {"enum": ["true", "false"]},
    },
}

TARGET_REF_ITEM = {
    "type": "object",
    "required": ["parameter", "name", "key"],
    "additionalProperties": False,
    "properties": {"parameter": STRING, "name": STRING, "key": STRING},
}
TRIGGER_AUTHENTICATION = crd_schema(
    {
        "type": "object",
        "minProperties": 1,
        "additionalProperties": False,
        "properties": {
            "secretTargetRef": {"type": "array", "minItems": 1, "items": TARGET_REF_ITEM},
            "configMapTargetRef": {"type": "array", "minItems": 1, "items": TARGET_REF_ITEM},
            "env": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["parameter", "name"],
                    "additionalProperties": False,
                    "properties": {"parameter": STRING, "name": STRING, "containerName": STRING},
                },
            },
            "podIdentity": {"type": "object"},
            "hashiCorpVault": {"type": "object"},
            "azureKeyVault": {"type": "object"},
            "awsSecretManager": {"type": "object"},
            "gcpSecretManager": {"type": "object"},
            "boundServiceAccountToken": {"type": "array"},
        },
    }
)

CNPG_CLUSTER = crd_schema(
    {
        "type": "object",
        "required": ["instances", "storage"],
        "additionalProperties": False,
        "properties": {
            "description": STRING,
            "instances": {"type": "integer", "minimum": 1},
            "imageName": STRING,
            "imageCatalogRef": {"type": "object"},
            "imagePullPolicy": {"enum": ["Always", "IfNotPresent", "Never"]},
            "primaryUpdateStrategy": {"enum": ["supervised", "unsupervised"]},
            "primaryUpdateMethod": {"enum": ["switchover", "restart"]},
            "enableSuperuserAccess": {"type": "boolean"},
            "enablePDB": {"type": "boolean"},
            "bootstrap": {
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    "initdb": {
                        "type": "object",
                        "required": ["database", "owner"],
                        "additionalProperties": False,
                        "properties": {
                            "database": STRING,
                            "owner": STRING,
                            "secret": {"type": "object", "required": ["name"]},
                            "encoding": STRING,
                            "localeCollate": STRING,
                            "localeCType": STRING,
                            "dataChecksums": {"type": "boolean"},
                            "postInitSQL": {"type": "array", "items": STRING},
                            "postInitApplicationSQL": {"type": "array", "items": STRING},
                        },
                    },
                    "recovery": {"type": "object"},
                    "pg_basebackup": {"type": "object"},
                },
            },
            "postgresql": {
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    # postgresql.conf values are strings in the CRD.
                    "parameters": {"type": "object", "additionalProperties": STRING},
                    "pg_hba": {"type": "array", "items": STRING},
                    "shared_preload_libraries": {"type": "array", "items": STRING},
                    "synchronous": {"type": "object"},
                },
            },
            "storage": {
                "type": "object",
                "anyOf": [{"required": ["size"]}, {"required": ["pvcTemplate"]}],
                "additionalProperties": False,
                "properties": {
                    "size": {"type": "string", "pattern": r"^\d+(Mi|Gi|Ti)$"},
                    "storageClass": STRING,
                    "resizeInUseVolumes": {"type": "boolean"},
                    "pvcTemplate": {"type": "object"},
                },
            },
            "walStorage": {"type": "object"},
            "resources": RESOURCES,
            "affinity": {
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    "enablePodAntiAffinity": {"type": "boolean"},
                    "topologyKey": STRING,
                    "podAntiAffinityType": {"enum": ["preferred", "required"]},
                    "nodeSelector": {"type": "object"},
                    "nodeAffinity": {"type": "object"},
                    "tolerations": {"type": "array"},
                },
            },
            "backup": {"type": "object"},
            "monitoring": {"type": "object"},
            "managed": {"type": "object"},
            "plugins": {"type": "array"},
            "priorityClassName": STRING,
            "topologySpreadConstraints": {"type": "array"},
        },
    }
)

RABBITMQ_CLUSTER = crd_schema(
    {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            # Odd sizes keep a majority through the loss of a node.
            "replicas": {"type": "integer", "minimum": 1, "not": {"multipleOf": 2}},
            "image": STRING,
            "imagePullSecrets": {"type": "array"},
            "service": {"type": "object"},
            "persistence": {
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    "storage": {"type": "string", "pattern": r"^\d+(Mi|Gi|Ti)$"},
                    "storageClassName": STRING,
                },
            },
            "resources": RESOURCES,
            "affinity": {"type": "object"},
            "tolerations": {"type": "array"},
            "rabbitmq": {
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    "additionalPlugins": {"type": "array", "items": STRING},
                    "additionalConfig": STRING,
                    "advancedConfig": STRING,
                    "envConfig": STRING,
                    "erlangInetConfig": STRING,
                },
            },
            "tls": {"type": "object"},
            "override": {"type": "object"},
            "terminationGracePeriodSeconds": NON_NEGATIVE,
            "delayStartSeconds": NON_NEGATIVE,
            "skipPostDeploySteps": {"type": "boolean"},
            "secretBackend": {"type": "object"},
            "autoEnableAllFeatureFlags": {"type": "boolean"},
        },
    }
)

CUSTOM_RESOURCES: dict[tuple[str, str], dict[str, Any]] = {
    ("keda.sh/v1alpha1", "ScaledObject"): SCALED_OBJECT,
    ("keda.sh/v1alpha1", "TriggerAuthentication"): TRIGGER_AUTHENTICATION,
    ("postgresql.cnpg.io/v1", "Cluster"): CNPG_CLUSTER,
    ("rabbitmq.com/v1beta1", "RabbitmqCluster"): RABBITMQ_CLUSTER,
}

# The Secrets the operators generate for a custom resource named NAME, and the keys in them.
OPERATOR_SECRETS: dict[str, tuple[str, set[str]]] = {
    "Cluster": ("{name}-app", {"username", "user", "password", "host", "port", "dbname", "uri", "pgpass"}),
    "RabbitmqCluster": ("{name}-default-user", {"username", "password", "host", "port", "default_user.conf"}),
}


def schema_errors(schema: dict[str, Any], instance: Any, where: str) -> list[str]:
    validator = jsonschema.Draft202012Validator(schema)
    return [
        f"{where}: {'.'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}"
        for e in validator.iter_errors(instance)
    ]


def custom_resource_errors(obj: dict[str, Any]) -> list[str]:
    key = (obj.get("apiVersion", ""), obj.get("kind", ""))
    where = f"{key[1]}/{obj.get('metadata', {}).get('name')}"
    errors = schema_errors(CUSTOM_RESOURCES[key], obj, where)
    if errors or key[1] != "ScaledObject":
        return errors
    for i, trigger in enumerate(obj["spec"]["triggers"]):
        if trigger["type"] == "rabbitmq":
            errors += schema_errors(RABBITMQ_TRIGGER_METADATA, trigger["metadata"], f"{where} trigger {i}")
        else:
            errors.append(f"{where}: trigger {i} has type {trigger['type']}, expected rabbitmq")
    behavior = obj["spec"].get("advanced", {}).get("horizontalPodAutoscalerConfig", {}).get("behavior")
    if behavior is not None:
        # KEDA passes it to the HPA it creates: validate it as part of one.
        errors += builtin_errors(
            {
                "apiVersion": "autoscaling/v2",
                "kind": "HorizontalPodAutoscaler",
                "metadata": {"name": obj["metadata"]["name"]},
                "spec": {
                    "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "x"},
                    "maxReplicas": 1,
                    "behavior": behavior,
                },
            }
        )
    return errors


def builtin_errors(obj: dict[str, Any]) -> list[str]:
    where = f"{obj.get('kind')}/{obj.get('metadata', {}).get('name')}"
    errors = []
    for version in K8S_VERSIONS:
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as e:
            path = ".".join(map(str, e.path)) or "<root>"
            errors.append(f"{where} (Kubernetes {version}): {path}: {e.message}")
        except kubernetes_validate.SchemaNotFoundError:
            errors.append(f"{where}: no schema for {obj.get('apiVersion')} in Kubernetes {version}")
    return errors


def validation_errors(objects: list[dict[str, Any]]) -> list[str]:
    """What a strict offline validation finds wrong with rendered objects; [] when all is well."""
    errors: list[str] = []
    for obj in objects:
        if (obj.get("apiVersion"), obj.get("kind")) in CUSTOM_RESOURCES:
            errors += custom_resource_errors(obj)
        else:
            errors += builtin_errors(obj)
    return errors


# ---------------------------------------------------------------------------------------------------
# Helpers over rendered objects


def of_kind(objects: list[dict], kind: str) -> list[dict]:
    return [o for o in objects if o["kind"] == kind]


def named(objects: list[dict], kind: str, name: str) -> dict:
    found = [o for o in of_kind(objects, kind) if o["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind}/{name}, found {len(found)}"
    return found[0]


def labels(obj: dict) -> dict[str, str]:
    return obj.get("metadata", {}).get("labels") or {}


def is_app(obj: dict) -> bool:
    return labels(obj).get("app.kubernetes.io/name") == APP


def workloads(objects: list[dict]) -> list[dict]:
    return [o for o in objects if o["kind"] in ("Deployment", "StatefulSet", "Job")]


def app_workloads(objects: list[dict]) -> list[dict]:
    return [o for o in workloads(objects) if is_app(o)]


def pod_spec(workload: dict) -> dict:
    return workload["spec"]["template"]["spec"]


def containers(workload: dict) -> list[dict]:
    return pod_spec(workload)["containers"] + pod_spec(workload).get("initContainers", [])


def component(obj: dict) -> str:
    return labels(obj).get("app.kubernetes.io/component", "")


def app_config(objects: list[dict]) -> dict[str, str]:
    (config,) = [o for o in of_kind(objects, "ConfigMap") if o["metadata"]["name"].startswith(CONFIG_MAP)]
    return dict(config["data"])


def app_settings(objects: list[dict], settings_from_env: Callable[[dict[str, str]], Settings]) -> Settings:
    return settings_from_env(app_config(objects))


def selects(selector: dict, pod_labels: dict[str, str]) -> bool:
    """Kubernetes label selector semantics (matchLabels and matchExpressions)."""
    for key, value in (selector.get("matchLabels") or {}).items():
        if pod_labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], expr.get("values", [])
        present = key in pod_labels
        if op == "In" and not (present and pod_labels[key] in values):
            return False
        if op == "NotIn" and present and pod_labels[key] in values:
            return False
        if op == "Exists" and not present:
            return False
        if op == "DoesNotExist" and present:
            return False
    return True


def env_list(container: dict) -> list[dict]:
    return container.get("env") or []


def qruntime_argv(container: dict) -> list[str]:
    """The arguments after `qruntime` (the image's entrypoint) of a qruntime container."""
    assert "command" not in container, f"{container['name']}: keep the image's qruntime entrypoint"
    return list(container.get("args") or [])


def secret_template() -> dict[str, set[str]]:
    """base/secrets.example.yaml: every Secret qruntime reads, name -> keys."""
    docs = yaml.safe_load_all((K8S_DIR / "base" / "secrets.example.yaml").read_text())
    return {d["metadata"]["name"]: set(d["stringData"]) for d in docs if d}


def secrets_available(objects: list[dict]) -> dict[str, set[str]]:
    """Secret name -> keys, for Secrets rendered and Secrets the rendered operator resources generate."""
    available = {
        s["metadata"]["name"]: set(s.get("data", {})) | set(s.get("stringData", {}))
        for s in of_kind(objects, "Secret")
    }
    for kind, (pattern, keys) in OPERATOR_SECRETS.items():
        for cr in of_kind(objects, kind):
            available[pattern.format(name=cr["metadata"]["name"])] = keys
    return available


def secret_refs(objects: list[dict]) -> list[tuple[str, str, str]]:
    """(who, Secret name, key) for every Secret key a workload or a TriggerAuthentication reads."""
    refs = []
    for workload in workloads(objects):
        for container in containers(workload):
            for env in env_list(container):
                ref = (env.get("valueFrom") or {}).get("secretKeyRef")
                if ref:
                    refs.append((workload["metadata"]["name"], ref["name"], ref["key"]))
            for source in container.get("envFrom") or []:
                assert "secretRef" not in source, "name the keys: envFrom a Secret hides what is read"
    for auth in of_kind(objects, "TriggerAuthentication"):
        for ref in auth["spec"].get("secretTargetRef", []):
            refs.append((auth["metadata"]["name"], ref["name"], ref["key"]))
    return refs


def walk(value: Any) -> Iterator[Any]:
    yield value
    if isinstance(value, dict):
        for v in value.values():
            yield from walk(v)
    elif isinstance(value, list):
        for v in value:
            yield from walk(v)


# ---------------------------------------------------------------------------------------------------
# Acceptance 1: every object validates offline, strictly


def test_every_object_validates_strictly(objects: list[dict]) -> None:
    kinds = {o["kind"] for o in objects}
    assert {"Deployment", "Service", "ConfigMap", "ServiceAccount", "Job", "PodDisruptionBudget"} <= kinds
    assert {"NetworkPolicy", "ScaledObject", "TriggerAuthentication"} <= kinds
    assert validation_errors(objects) == []


def test_prod_has_operator_managed_datastores(rendered: dict[str, list[dict]]) -> None:
    prod = rendered["prod"]
    (cluster,) = of_kind(prod, "Cluster")
    assert cluster["spec"]["instances"] >= 3, "a highly available PostgreSQL has a primary and replicas"
    (broker,) = of_kind(prod, "RabbitmqCluster")
    assert broker["spec"]["replicas"] >= 3
    assert not of_kind(prod, "StatefulSet"), "prod runs no hand-made database or broker"
    assert not of_kind(prod, "Secret"), "prod ships no credentials: the operators generate them"
    dev = rendered["dev"]
    assert {s["metadata"]["name"] for s in of_kind(dev, "StatefulSet")} == {"postgres", "rabbitmq"}


def test_a_misspelt_field_in_a_built_in_object_is_rejected(rendered: dict[str, list[dict]]) -> None:
    deployment = copy.deepcopy(named(rendered["prod"], "Deployment", "qruntime-api"))
    container = pod_spec(deployment)["containers"][0]
    container["readinessProbes"] = container.pop("readinessProbe")
    errors = validation_errors([deployment])
    assert errors and all("readinessProbes" in e for e in errors), errors


def edit(obj: dict, path: str, old: str | None, new: str | None, value: Any = None) -> None:
    """At the dotted path: rename key `old` to `new`, drop `old` (new=None) or set `new` to `value`."""
    for step in path.split("."):
        obj = obj[int(step)] if step.isdigit() else obj[step]
    if old is not None:
        value = obj.pop(old)
    if new is not None:
        obj[new] = value


@pytest.mark.parametrize(
    ("kind", "path", "old", "new", "value"),
    [
        ("ScaledObject", "spec", "minReplicaCount", "minReplicasCount", None),
        ("ScaledObject", "spec", "scaleTargetRef", None, None),
        ("ScaledObject", "spec.triggers.0.metadata", "queueName", "queuName", None),
        ("ScaledObject", "spec.triggers.0.metadata", None, "value", 1),  # a number, not a string
        (
            "ScaledObject",
            "spec.advanced.horizontalPodAutoscalerConfig.behavior.scaleDown",
            "stabilizationWindowSeconds",
            "stabilisationWindowSeconds",
            None,
        ),
        ("TriggerAuthentication", "spec.secretTargetRef.0", "key", "keys", None),
        ("Cluster", "spec", "instances", "instance", None),
        ("Cluster", "spec.bootstrap.initdb", "owner", None, None),
        ("RabbitmqCluster", "spec.persistence", None, "storageClass", "ssd"),
    ],
)
def test_a_misspelt_field_in_a_custom_resource_is_rejected(
    rendered: dict[str, list[dict]], kind: str, path: str, old: str | None, new: str | None, value: Any
) -> None:
    obj = copy.deepcopy(of_kind(rendered["prod"], kind)[0])
    assert validation_errors([obj]) == []
    edit(obj, path, old, new, value)
    errors = validation_errors([obj])
    assert errors and any((new or old) in e for e in errors), errors


def test_a_misspelt_field_fails_the_whole_pipeline(tmp_path: Path) -> None:
    """Render a kustomization that patches a typo into the prod overlay: validation must catch it."""
    overlay = os.path.relpath(K8S_DIR / "overlays" / "prod", tmp_path)
    (tmp_path / "kustomization.yaml").write_text(
        yaml.safe_dump(
            {
                "resources": [overlay],
                "patches": [
                    {
                        "target": {"kind": "Deployment", "name": "qruntime-scheduler"},
                        "patch": yaml.safe_dump(
                            [
                                {
                                    "op": "add",
                                    "path": "/spec/template/spec/containers/0/imagePullPolicyy",
                                    "value": "Always",
                                }
                            ]
                        ),
                    }
                ],
            }
        )
    )
    errors = validation_errors(render(tmp_path))
    assert errors and all("imagePullPolicyy" in e for e in errors), errors


def test_the_secret_template_validates_and_has_every_key_the_workloads_read(
    rendered: dict[str, list[dict]],
) -> None:
    """base/secrets.example.yaml describes every Secret qruntime reads: same names (prod), same keys."""
    template = [d for d in yaml.safe_load_all((K8S_DIR / "base" / "secrets.example.yaml").read_text()) if d]
    assert validation_errors(template) == []
    keys = secret_template()
    for who, secret, key in secret_refs(rendered["prod"]):
        assert key in keys.get(secret, set()), (who, secret, key, "missing from the template")


# ---------------------------------------------------------------------------------------------------
# The objects agree with the app and with each other


def test_every_container_runs_a_real_qruntime_command(
    objects: list[dict], parse_qruntime_args: Callable[[list[str]], Any]
) -> None:
    commands = set()
    for workload in app_workloads(objects):
        for container in containers(workload):
            args = parse_qruntime_args(qruntime_argv(container))
            commands.add(args.command)
            assert args.command == component(workload), (workload["metadata"]["name"], args.command)
    assert commands == {"migrate", "api", "scheduler", "executor"}


def test_environment_names_are_settings_and_values_parse(
    objects: list[dict], setting_env_names: set[str], settings_from_env: Callable[[dict[str, str]], Settings]
) -> None:
    config = app_config(objects)
    names = {k for k in config if k.startswith("QRUNTIME_")}
    for workload in app_workloads(objects):
        for container in containers(workload):
            names |= {e["name"] for e in env_list(container) if e["name"].startswith("QRUNTIME_")}
    assert names, "no QRUNTIME_ settings at all"
    assert names <= setting_env_names, f"not settings: {sorted(names - setting_env_names)}"
    settings = settings_from_env(config)  # the ConfigMap's values are valid for their types
    assert settings.api_host == "0.0.0.0", "the api must listen on the pod's address"
    assert settings.health_port is not None, "scheduler and executor probes need QRUNTIME_HEALTH_PORT"


def test_composed_variables_are_defined_before_use(objects: list[dict]) -> None:
    """$(VAR) expands only variables defined earlier in the same env list; otherwise it stays literal."""
    for workload in workloads(objects):
        for container in containers(workload):
            defined: set[str] = set()
            for env in env_list(container):
                for ref in re.findall(r"\$\((\w+)\)", env.get("value", "")):
                    assert ref in defined, (
                        f"{workload['metadata']['name']}: {env['name']} uses $({ref}) first"
                    )
                defined.add(env["name"])
            names = [e["name"] for e in env_list(container)]
            assert len(names) == len(set(names)), f"duplicate env names in {workload['metadata']['name']}"
    for workload in app_workloads(objects):
        for container in containers(workload):
            names = {e["name"] for e in env_list(container)}
            assert {"QRUNTIME_DATABASE_URL", "QRUNTIME_AMQP_URL"} <= names


def test_connection_urls_have_the_schemes_the_app_expects(objects: list[dict]) -> None:
    for workload in app_workloads(objects):
        env = {e["name"]: e.get("value", "") for e in env_list(containers(workload)[0])}
        assert env["QRUNTIME_DATABASE_URL"].startswith("postgresql+asyncpg://")
        assert env["QRUNTIME_AMQP_URL"].startswith("amqp://")


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_reference_resolves(rendered: dict[str, list[dict]], overlay: str) -> None:
    objects = rendered[overlay]
    config_maps = {c["metadata"]["name"] for c in of_kind(objects, "ConfigMap")}
    accounts = {a["metadata"]["name"] for a in of_kind(objects, "ServiceAccount")}
    for workload in workloads(objects):
        name = workload["metadata"]["name"]
        if is_app(workload):
            assert pod_spec(workload).get("serviceAccountName") in accounts, name
        for container in containers(workload):
            for source in container.get("envFrom") or []:
                assert source["configMapRef"]["name"] in config_maps, name
            for env in env_list(container):
                ref = (env.get("valueFrom") or {}).get("configMapKeyRef")
                if ref:
                    assert ref["name"] in config_maps, (name, ref)
    available = secrets_available(objects)
    template = secret_template()
    provided_by_you = set()
    for who, secret, key in secret_refs(objects):
        if secret in available:
            assert key in available[secret], (who, secret, key)
        else:
            # Neither rendered nor generated by an operator: the template must describe it.
            assert key in template.get(secret, set()), (who, secret, key, "not in secrets.example.yaml")
            provided_by_you.add(secret)
    if overlay == "dev":
        assert not provided_by_you, "dev must run with nothing but `kubectl apply -k`"
    else:
        # Documented in overlays/prod/kustomization.yaml and docs/deploy.md.
        assert provided_by_you == {"qruntime-auth"}


def test_only_the_api_holds_the_token_signing_key(
    objects: list[dict], settings_from_env: Callable[[dict[str, str]], Settings]
) -> None:
    for workload in app_workloads(objects):
        for container in containers(workload):
            env = {e["name"]: e for e in env_list(container)}
            if component(workload) != "api":
                assert "QRUNTIME_JWT_SECRET" not in env, workload["metadata"]["name"]
                continue
            assert "value" not in env["QRUNTIME_JWT_SECRET"], "from a Secret, never a literal"
            ref = env["QRUNTIME_JWT_SECRET"]["valueFrom"]["secretKeyRef"]
            assert env["QRUNTIME_ENVIRONMENT"]["value"] == "production"
            # The key the overlay generates (dev), or a real one (prod), is accepted in production mode.
            rendered_secrets = {s["metadata"]["name"]: s for s in of_kind(objects, "Secret")}
            key = "k" * 40
            if ref["name"] in rendered_secrets:
                key = base64.b64decode(rendered_secrets[ref["name"]]["data"][ref["key"]]).decode()
            settings = settings_from_env(
                {**app_config(objects), "QRUNTIME_ENVIRONMENT": "production", "QRUNTIME_JWT_SECRET": key}
            )
            assert settings.environment == "production"


def test_each_backend_has_an_autoscaled_executor_on_its_queue(
    objects: list[dict], settings_from_env: Callable[[dict[str, str]], Settings]
) -> None:
    settings = app_settings(objects, settings_from_env)
    config = app_config(objects)
    executors = {}
    for deployment in of_kind(objects, "Deployment"):
        if component(deployment) == "executor":
            (container,) = pod_spec(deployment)["containers"]
            argv = qruntime_argv(container)
            assert argv[:2] == ["executor", "--backend"] and len(argv) == 3, argv
            executors[argv[2]] = deployment
            assert labels(deployment)["qruntime.io/backend"] == argv[2]
            # KEDA owns the replica count; an apply must not reset it.
            assert "replicas" not in deployment["spec"], deployment["metadata"]["name"]
    assert set(executors) == set(settings.backends), "one executor Deployment per QRUNTIME_BACKENDS entry"

    auths = {a["metadata"]["name"]: a for a in of_kind(objects, "TriggerAuthentication")}
    scaled = {s["spec"]["scaleTargetRef"]["name"]: s for s in of_kind(objects, "ScaledObject")}
    assert len(scaled) == len(of_kind(objects, "ScaledObject")) == len(executors)
    for backend, deployment in executors.items():
        scaler = scaled[deployment["metadata"]["name"]]
        assert scaler["spec"]["scaleTargetRef"].get("kind", "Deployment") == "Deployment"
        (trigger,) = scaler["spec"]["triggers"]
        meta = trigger["metadata"]
        assert trigger["type"] == "rabbitmq"
        assert meta["queueName"] == f"{settings.namespace}.executor.{backend}"
        assert meta["mode"] == "QueueLength"
        # The scheduler puts at most dispatch_per_executor messages per live executor on the queue, so
        # a target at or above it could never add a replica; unacknowledged ones must count (http).
        assert float(meta["value"]) < settings.dispatch_per_executor
        assert meta.get("protocol") == "http" and meta.get("excludeUnacknowledged") != "true"
        # Credentials via TriggerAuthentication only: nothing that could hold one is inline.
        assert not {"host", "username", "password"} & set(meta)
        assert not any(re.search(r"://[^/]*@", v) for v in meta.values()), meta
        auth = auths[trigger["authenticationRef"]["name"]]
        assert {r["parameter"] for r in auth["spec"]["secretTargetRef"]} >= {"username", "password"}
        # The management URL comes from the scale target's environment: present, credential-free.
        url = config[meta["hostFromEnv"]]
        assert re.fullmatch(r"http://[a-z0-9.-]+\.svc(\.[a-z.]+)?:15672/", url), url
        namespace = deployment["metadata"].get("namespace")
        assert f".{namespace}.svc" in url, "KEDA resolves the host from its own namespace"
        assert scaler["spec"]["minReplicaCount"] <= scaler["spec"]["maxReplicaCount"]


def test_executors_shut_down_gracefully(objects: list[dict]) -> None:
    for deployment in of_kind(objects, "Deployment"):
        if component(deployment) == "executor":
            # Long enough to finish a running job after SIGTERM (scale-in, rollout, drain).
            assert pod_spec(deployment)["terminationGracePeriodSeconds"] >= 300
            assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0


def test_the_scheduler_runs_two_replicas(objects: list[dict]) -> None:
    """Safe because of its advisory-lock leader election; the second one takes over on failure."""
    assert named(objects, "Deployment", "qruntime-scheduler")["spec"]["replicas"] == 2


def test_probes_use_the_health_endpoints_on_the_configured_ports(
    objects: list[dict], settings_from_env: Callable[[dict[str, str]], Settings]
) -> None:
    settings = app_settings(objects, settings_from_env)
    for deployment in [d for d in of_kind(objects, "Deployment") if is_app(d)]:
        (container,) = pod_spec(deployment)["containers"]
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}

        def probe(kind: str, c: dict = container, p: dict = ports) -> tuple[str, int]:
            get = c[kind]["httpGet"]
            port = get["port"]
            return get["path"], p[port] if isinstance(port, str) else port

        if component(deployment) == "api":
            port = settings.api_port
            assert probe("readinessProbe") == ("/readyz", port)
        else:
            port = settings.health_port
            assert probe("readinessProbe") == ("/healthz", port)
        assert probe("livenessProbe") == ("/healthz", port)
        # qiskit imports take seconds: a startup probe keeps liveness from killing a booting pod.
        assert probe("startupProbe") == ("/healthz", port)


def test_pods_are_hardened_and_sized(objects: list[dict]) -> None:
    for workload in workloads(objects):
        name = workload["metadata"]["name"]
        spec = pod_spec(workload)
        pod_security = spec.get("securityContext", {})
        assert pod_security.get("runAsNonRoot") is True, name
        assert pod_security.get("runAsUser", 0) > 0, name
        assert pod_security.get("seccompProfile", {}).get("type") == "RuntimeDefault", name
        assert spec.get("automountServiceAccountToken") is False, name
        for container in containers(workload):
            resources = container.get("resources", {})
            for bound in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(resources.get(bound, {})), (name, bound)
            security = container.get("securityContext", {})
            assert security.get("allowPrivilegeEscalation") is False, name
            assert security.get("capabilities", {}).get("drop") == ["ALL"], name
            assert not security.get("privileged"), name
            if is_app(workload):
                assert security.get("readOnlyRootFilesystem") is True, name
                mounts = {m["mountPath"]: m["name"] for m in container.get("volumeMounts", [])}
                volumes = {v["name"]: v for v in spec.get("volumes", [])}
                assert "emptyDir" in volumes[mounts["/tmp"]], f"{name}: /tmp must be a writable emptyDir"


def test_images_are_pinned(objects: list[dict]) -> None:
    for workload in workloads(objects):
        for container in containers(workload):
            image = container["image"]
            assert "@sha256:" in image or re.search(r":[\w][\w.-]*$", image.rsplit("/", 1)[-1]), image
            assert not image.endswith(":latest"), image
    for cr in of_kind(objects, "Cluster"):
        assert re.search(r":\d+\.\d+", cr["spec"]["imageName"])
    for cr in of_kind(objects, "RabbitmqCluster"):
        assert re.search(r":\d+\.\d+\.\d+-management", cr["spec"]["image"])


def test_objects_carry_the_recommended_labels(objects: list[dict]) -> None:
    for obj in objects:
        if obj["kind"] == "Namespace":
            continue
        assert "app.kubernetes.io/name" in labels(obj), f"{obj['kind']}/{obj['metadata']['name']}"
        if is_app(obj):
            assert labels(obj)["app.kubernetes.io/part-of"] == APP
    for workload in workloads(objects):
        template_labels = workload["spec"]["template"]["metadata"]["labels"]
        if workload["kind"] != "Job":
            assert selects(workload["spec"]["selector"], template_labels), workload["metadata"]["name"]
        if is_app(workload):
            assert component(workload) and template_labels["app.kubernetes.io/component"] == component(
                workload
            )


def test_each_long_running_workload_has_one_disruption_budget(objects: list[dict]) -> None:
    budgets = of_kind(objects, "PodDisruptionBudget")
    for deployment in [d for d in of_kind(objects, "Deployment") if is_app(d)]:
        pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
        matching = [b for b in budgets if selects(b["spec"]["selector"], pod_labels)]
        assert len(matching) == 1, deployment["metadata"]["name"]
    for budget in budgets:
        # Every budget selects the pods of exactly one workload (or one operator-made cluster).
        owners = [
            w
            for w in workloads(objects)
            if selects(budget["spec"]["selector"], w["spec"]["template"]["metadata"]["labels"])
        ]
        assert len(owners) <= 1, budget["metadata"]["name"]


def test_only_the_api_is_reachable_from_outside(
    objects: list[dict], settings_from_env: Callable[[dict[str, str]], Settings]
) -> None:
    api_port = app_settings(objects, settings_from_env).api_port
    service = named(objects, "Service", "qruntime-api")
    assert service["spec"].get("type", "ClusterIP") == "ClusterIP"
    assert [s for s in of_kind(objects, "Service") if is_app(s)] == [service], "one Service, the api's"
    policies = of_kind(objects, "NetworkPolicy")
    for deployment in [d for d in of_kind(objects, "Deployment") if is_app(d)]:
        pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
        (container,) = pod_spec(deployment)["containers"]
        ports = {p["name"]: p["containerPort"] for p in container.get("ports", [])}
        selecting = [p for p in policies if selects(p["spec"]["podSelector"], pod_labels)]
        assert any("Ingress" in p["spec"]["policyTypes"] for p in selecting), "ingress must be restricted"
        rules = [r for p in selecting for r in p["spec"].get("ingress") or []]
        open_rules = [r for r in rules if not r.get("from")]
        if component(deployment) == "api":
            assert selects({"matchLabels": service["spec"]["selector"]}, pod_labels)
            assert open_rules and all(
                {ports.get(p["port"], p["port"]) for p in r["ports"]} == {api_port} for r in open_rules
            ), "the api is open on its port only"
        else:
            assert not selects({"matchLabels": service["spec"]["selector"]}, pod_labels)
            assert not open_rules, f"{deployment['metadata']['name']} must not be reachable from anywhere"
            for rule in rules:
                assert all("namespaceSelector" in peer or "podSelector" in peer for peer in rule["from"])
                assert all(not peer.get("ipBlock") for peer in rule["from"])


def test_the_migration_can_be_applied_first(objects: list[dict]) -> None:
    """`kubectl apply -k <overlay> -l qruntime.io/release-step=migrate` must bring all the Job needs."""
    job = named(objects, "Job", "qruntime-migrate")
    (container,) = pod_spec(job)["containers"]
    assert qruntime_argv(container) == ["migrate"]
    assert pod_spec(job)["restartPolicy"] == "Never"
    assert job["spec"]["backoffLimit"] >= 3 and job["spec"]["ttlSecondsAfterFinished"] > 0
    step = [o for o in objects if labels(o).get(RELEASE_STEP_LABEL) == "migrate"]
    step_names = {(o["kind"], o["metadata"]["name"]) for o in step}
    assert ("Job", "qruntime-migrate") in step_names
    assert ("ServiceAccount", pod_spec(job)["serviceAccountName"]) in step_names
    for source in container["envFrom"]:
        assert ("ConfigMap", source["configMapRef"]["name"]) in step_names
    rendered_secrets = {s["metadata"]["name"] for s in of_kind(objects, "Secret")}
    for env in env_list(container):
        ref = (env.get("valueFrom") or {}).get("secretKeyRef")
        if ref and ref["name"] in rendered_secrets:
            assert ("Secret", ref["name"]) in step_names, ref["name"]
    assert not [o for o in step if o["kind"] in ("Deployment", "StatefulSet")], "only the migration"


def test_no_placeholder_is_left(objects: list[dict]) -> None:
    for obj in objects:
        for value in walk(obj):
            assert not (isinstance(value, str) and "BACKEND" in value), (
                f"{obj['kind']}/{obj['metadata']['name']}"
            )


def test_the_api_serves_metrics_on_a_port_of_its_own_for_monitoring_only(
    objects: list[dict], settings_from_env: Callable[[dict[str, str]], Settings]
) -> None:
    """Issue 12: /metrics is not on the API port; its port is open to the monitoring namespace only."""
    (api,) = [d for d in of_kind(objects, "Deployment") if is_app(d) and component(d) == "api"]
    (container,) = pod_spec(api)["containers"]
    env = {e["name"]: e["value"] for e in env_list(container) if "value" in e}
    settings = settings_from_env({**app_config(objects), **env})
    assert settings.metrics_port is not None and settings.metrics_port != settings.api_port
    assert settings.metrics_host == "0.0.0.0" and settings.metrics_token is None
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports["metrics"] == settings.metrics_port
    annotations = api["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == str(settings.metrics_port)
    service = named(objects, "Service", "qruntime-api")
    assert [p["targetPort"] for p in service["spec"]["ports"]] == ["http"], "the Service exposes no metrics"
    pod_labels = api["spec"]["template"]["metadata"]["labels"]
    for policy in of_kind(objects, "NetworkPolicy"):
        if not selects(policy["spec"]["podSelector"], pod_labels):
            continue
        for rule in policy["spec"].get("ingress") or []:
            named_ports = {p["port"] for p in rule["ports"]}
            if "metrics" in named_ports:
                assert rule["from"] == [
                    {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}
                ]
            else:
                assert named_ports == {"http"}
    # The parse workers' memory budget fits in the container's limit, with the api beside them.
    limit_mib = int(container["resources"]["limits"]["memory"].removesuffix("Gi")) * 1024
    assert settings.parse_workers * settings.parse_memory_mb + 512 <= limit_mib
