"""Work messages between processes stay readable across versions: a dispatch from a sender older than
its `inputs` field reads without them, and one with them reads back exactly as it was sent."""

import uuid

from shared.messaging.messages import Dispatch, DispatchedInputs, executor_command_adapter


def test_a_dispatch_without_inputs_reads_as_one_whose_inputs_are_in_the_row() -> None:
    older = {
        "type": "dispatch",
        "message_id": str(uuid.uuid4()),
        "schema_version": 1,
        "occurred_at": "2026-11-30T12:00:00Z",
        "dispatch_id": str(uuid.uuid4()),
        "job_id": "j1",
        "backend": "aer_simulator",
    }
    message = executor_command_adapter.validate_python(older)
    assert isinstance(message, Dispatch) and message.inputs is None and message.any_in_session


def test_a_dispatch_with_inputs_reads_back_as_sent() -> None:
    inputs = DispatchedInputs(
        program_id="sampler", params='{"pubs": [], "version": 2}', max_execution_time=30
    )
    sent = Dispatch(
        dispatch_id=uuid.uuid4(), job_id="j1", backend="aer_simulator", any_in_session=False, inputs=inputs
    )
    read = executor_command_adapter.validate_json(sent.model_dump_json())
    assert read == sent and isinstance(read, Dispatch) and read.inputs == inputs
