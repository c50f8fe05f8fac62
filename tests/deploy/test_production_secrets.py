"""The api runs in production mode in both overlays, so it must get every secret that mode demands:
the same names Settings.check_signing_secret asks for, each from a Secret key the overlay provides."""

import subprocess
from pathlib import Path

import pytest
import yaml

from shared.kit.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
REQUIRED_IN_PRODUCTION = ("QRUNTIME_JWT_SECRET", "QRUNTIME_SECRETS_KEY")


def rendered(overlay: str) -> list[dict]:
    out = subprocess.run(
        ["kubectl", "kustomize", str(ROOT / "deploy" / "k8s" / "overlays" / overlay)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


@pytest.mark.parametrize("overlay", ["dev", "prod"])
def test_production_api_gets_every_secret_it_requires(overlay: str) -> None:
    objects = rendered(overlay)
    api = next(o for o in objects if o["kind"] == "Deployment" and o["metadata"]["name"].endswith("api"))
    env = {e["name"]: e for e in api["spec"]["template"]["spec"]["containers"][0].get("env", [])}
    assert env["QRUNTIME_ENVIRONMENT"]["value"] == "production"
    for name in REQUIRED_IN_PRODUCTION:
        assert name.removeprefix("QRUNTIME_").lower() in Settings.model_fields
        assert "secretKeyRef" in env[name]["valueFrom"], name
    if overlay == "dev":
        # The dev overlay generates throwaway values: they must pass the production check.
        secret = next(
            o for o in objects if o["kind"] == "Secret" and o["metadata"]["name"].startswith("qruntime-auth")
        )
        import base64

        values = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
        keys = {name: env[name]["valueFrom"]["secretKeyRef"]["key"] for name in REQUIRED_IN_PRODUCTION}
        Settings(
            environment="production",
            jwt_secret=values[keys["QRUNTIME_JWT_SECRET"]],
            secrets_key=values[keys["QRUNTIME_SECRETS_KEY"]],
        ).check_signing_secret()
