"""The OpenAPI document describes every route of the real API, generically: a route added later
without a summary, a description, an example or its documented refusals fails here.

HTML pages (/console...) and routes hidden from the schema (the /experimental mirror, /docs) are
not API operations and are left out by rule.
"""

from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute

from services.api.app import create_app
from shared.kit.settings import Settings

EXCLUDED_PREFIXES = ("/console",)
BODY_METHODS = {"post", "put", "patch"}


@pytest.fixture(scope="module")
def app() -> FastAPI:
    return create_app(Settings())


@pytest.fixture(scope="module")
def document(app: FastAPI) -> dict[str, Any]:
    return app.openapi()


def operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (path, method, operation)
        for path, methods in document["paths"].items()
        if not path.startswith(EXCLUDED_PREFIXES)
        for method, operation in methods.items()
    ]


def documented_routes(app: FastAPI) -> list[APIRoute]:
    return [
        route
        for route in app.routes
        if isinstance(route, APIRoute)
        and route.include_in_schema
        and not route.path.startswith(EXCLUDED_PREFIXES)
    ]


def has_example(content: dict[str, Any]) -> bool:
    return any("example" in media or media.get("examples") for media in content.values())


def test_every_route_has_its_own_summary_and_description(app: FastAPI) -> None:
    missing = [
        f"{sorted(route.methods)} {route.path}"
        for route in documented_routes(app)
        if not route.summary or not (route.description or "").strip()
    ]
    assert not missing, f"routes without summary or description: {missing}"


def test_every_operation_has_schemas_and_examples(document: dict[str, Any]) -> None:
    problems = []
    for path, method, operation in operations(document):
        where = f"{method.upper()} {path}"
        if not operation.get("tags"):
            problems.append(f"{where}: no tag")
        successes = {k: v for k, v in operation["responses"].items() if k.startswith("2")}
        if not successes:
            problems.append(f"{where}: no success response")
        for status, response in successes.items():
            content = response.get("content")
            if status == "204":
                continue
            if not content:
                problems.append(f"{where}: {status} has no content")
                continue
            for media_type, media in content.items():
                schema = media.get("schema")
                if not schema or schema in ({"type": "object"}, {}):
                    problems.append(f"{where}: {status} {media_type} has no schema")
            if not has_example(content):
                problems.append(f"{where}: {status} has no example")
        body = operation.get("requestBody")
        if method in BODY_METHODS and body is not None:
            for media_type, media in body.get("content", {}).items():
                schema = media.get("schema") or {}
                if not schema or schema == {"type": "object"}:
                    problems.append(f"{where}: request body {media_type} has no schema")
            if not has_example(body.get("content", {})):
                problems.append(f"{where}: request body has no example")
    assert not problems, "\n".join(problems)


def test_every_refusal_is_documented_with_the_errors_body(document: dict[str, Any]) -> None:
    problems = []
    for path, method, operation in operations(document):
        where = f"{method.upper()} {path}"
        refusals = {k: v for k, v in operation["responses"].items() if k.startswith("4")}
        if "422" in operation["responses"]:
            problems.append(f"{where}: documents FastAPI's 422, which the API never sends")
        takes_input = operation.get("parameters") or operation.get("requestBody")
        if not refusals and (takes_input or path.startswith("/api/v1")):
            problems.append(f"{where}: documents no 4xx refusal")
        for status, response in refusals.items():
            media = response.get("content", {}).get("application/json", {})
            if media.get("schema") != {"$ref": "#/components/schemas/ErrorBody"}:
                problems.append(f"{where}: {status} does not use the errors schema")
            examples = media.get("examples", {})
            if not examples:
                problems.append(f"{where}: {status} names no error code")
            for example in examples.values():
                (error,) = example["value"]["errors"]
                assert isinstance(error["code"], int) and error["message"]
        if path.startswith("/api/v1"):
            if not operation.get("security"):
                problems.append(f"{where}: no security requirement")
            if "401" not in refusals:
                problems.append(f"{where}: 401 not documented")
    assert not problems, "\n".join(problems)
    schemas = document["components"]["schemas"]
    assert "HTTPValidationError" not in schemas
    assert schemas["ErrorBody"]["properties"]["errors"]["type"] == "array"


def test_security_schemes_give_swagger_an_authorize_button(document: dict[str, Any]) -> None:
    schemes = document["components"]["securitySchemes"]
    assert schemes["apikey"] == {
        **schemes["apikey"],
        "type": "apiKey",
        "in": "header",
        "name": "Authorization",
    }
    assert schemes["bearer"]["type"] == "http" and schemes["bearer"]["scheme"] == "bearer"
    assert schemes["instance"]["name"] == "Service-CRN"


def resolve(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    if "$ref" in schema:
        return resolve(document, document["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]])
    return schema


def test_job_submission_and_token_exchange_document_their_bodies(document: dict[str, Any]) -> None:
    submit = document["paths"]["/api/v1/jobs"]["post"]["requestBody"]["content"]["application/json"]
    schema = resolve(document, submit["schema"])
    assert {"program_id", "backend", "params"} <= set(schema["properties"])
    params = resolve(document, schema["properties"]["params"])
    assert {"pubs", "options"} <= set(params["properties"])
    assert submit["example"]["params"]["pubs"]
    token = document["paths"]["/identity/token"]["post"]["requestBody"]["content"]
    form = token["application/x-www-form-urlencoded"]
    assert {"grant_type", "apikey"} <= set(resolve(document, form["schema"])["properties"])


def test_the_experimental_mirror_is_not_documented_twice(document: dict[str, Any]) -> None:
    assert not [p for p in document["paths"] if p.startswith("/experimental")]


def test_other_responses_are_kept(document: dict[str, Any]) -> None:
    not_ready = document["paths"]["/readyz"]["get"]["responses"]["503"]
    assert not_ready["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Readiness"}


@pytest.mark.parametrize("wanted", [False, True])
def test_fastapis_own_telemetry_follows_the_setting(wanted: bool) -> None:
    # Off by default (nothing then looks for an OpenTelemetry provider on every request); on when
    # an installation that adds an SDK asks for it.
    app = create_app(Settings(otel_telemetry=wanted) if wanted else Settings())
    config = app._telemetry  # FastAPI's own configuration of its native telemetry
    assert [config[part] for part in ("tracing", "metrics", "logs", "operation_spans")] == [wanted] * 4
