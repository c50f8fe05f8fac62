import json
from pathlib import Path

from shared.events.document import Event, asyncapi_document, event_json_schema

SCHEMA_FILE = Path(__file__).resolve().parents[2] / "docs" / "events.schema.json"


def test_published_schema_is_the_models() -> None:
    """docs/events.schema.json is generated from the model; regenerate it when the model changes."""
    assert json.loads(SCHEMA_FILE.read_text()) == json.loads(json.dumps(event_json_schema()))


def test_routing_keys() -> None:
    job = Event(type="job.state_changed", job_id="j", backend="fake_manila", instance="abc", state="done")
    session = Event(type="session.state_changed", session_id="s", backend="aer_simulator", state="closed")
    assert job.routing_key() == "job.done.fake_manila" and job.is_final
    assert job.tenant_routing_key() == "abc.job.done.fake_manila"
    assert session.routing_key() == "session.closed.aer_simulator" and session.is_final


def test_asyncapi_names_the_exchanges_and_embeds_the_schema() -> None:
    document = asyncapi_document("qruntime")
    assert document["asyncapi"].startswith("2.")
    assert set(document["channels"]) >= {"job.{state}.{backend}", "session.{state}.{backend}"}
    binding = document["channels"]["job.{state}.{backend}"]["bindings"]["amqp"]
    assert binding["exchange"]["name"] == "qruntime.events"
    assert document["components"]["schemas"]["QruntimeEvent"]["properties"]["event_id"]


def test_a_sessions_stream_ends_only_with_the_session_closing() -> None:
    finished_job = Event(type="job.state_changed", job_id="j", session_id="s", backend="b", state="done")
    closed = Event(type="session.state_changed", session_id="s", backend="b", state="closed")
    assert finished_job.ends_stream_of("job") and not finished_job.ends_stream_of("session")
    assert closed.ends_stream_of("session") and not closed.ends_stream_of("job")
