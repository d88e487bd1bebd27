"""Every operation is documented: a summary, problem responses, JSON bodies with examples."""

from __future__ import annotations

import json
import logging

from fastapi.testclient import TestClient

from latentspace.logs import JsonFormatter


def test_every_operation_is_documented_with_examples(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    components = schema["components"]["schemas"]
    assert "Problem" in components
    for path, operations in schema["paths"].items():
        for method, op in operations.items():
            where = f"{method.upper()} {path}"
            assert op.get("summary"), f"{where} has no summary"
            if path.startswith("/v1"):
                assert "404" in op["responses"] or "401" in op["responses"], where
            body = op.get("requestBody", {}).get("content", {}).get("application/json")
            if body is None:
                continue
            ref = body["schema"]["$ref"].rsplit("/", 1)[-1]
            assert components[ref].get("examples"), f"{where}: {ref} has no examples"


def test_json_log_lines_carry_request_fields() -> None:
    record = logging.LogRecord("latentspace.access", logging.INFO, "x", 1, "GET / 200", (), None)
    record.request_id = "abc"
    record.status = 200
    line = json.loads(JsonFormatter().format(record))
    assert line["message"] == "GET / 200"
    assert line["request_id"] == "abc"
    assert line["status"] == 200
    assert line["level"] == "info"
