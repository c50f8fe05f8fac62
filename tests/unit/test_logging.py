import json
import logging

from shared.kit.logging_setup import JsonFormatter


def test_json_lines_carry_job_and_session_ids() -> None:
    record = logging.LogRecord("qruntime.x", logging.WARNING, __file__, 1, "job %s lost", ("j1",), None)
    record.job_id = "j1"
    record.session_id = "s1"
    document = json.loads(JsonFormatter("executor").format(record))
    assert document["message"] == "job j1 lost"
    assert document["level"] == "warning" and document["process"] == "executor"
    assert document["job_id"] == "j1" and document["session_id"] == "s1"
    assert "backend" not in document
