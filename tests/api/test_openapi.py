"""Every operation is documented: a summary, problem responses, JSON bodies with examples."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from tests.fixtures import make_settings

from latentspace.api import create_app
from latentspace.logs import JsonFormatter
from latentspace.settings import LimitSettings


def test_every_operation_is_documented_with_examples(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    components = schema["components"]["schemas"]
    assert "Problem" in components
    for path, operations in schema["paths"].items():
        for method, op in operations.items():
            where = f"{method.upper()} {path}"
            assert op.get("summary"), f"{where} has no summary"
            if path.startswith("/v1"):
                assert {"401", "403", "413", "422"} <= set(op["responses"]), where
            # 404 is documented exactly where the path names something that may not exist
            can_404 = (
                "{name}" in path or "{job_id}" in path or path in ("/v1/embeddings", "/v1/rerank")
            )
            assert ("404" in op["responses"]) == can_404, where
            body = op.get("requestBody", {}).get("content", {}).get("application/json")
            if body is None:
                continue
            schema_ = body["schema"]  # an optional body may also be null: its object's ref
            refs = [s["$ref"] for s in schema_.get("anyOf", [schema_]) if "$ref" in s]
            ref = refs[0].rsplit("/", 1)[-1]
            assert components[ref].get("examples"), f"{where}: {ref} has no examples"


def test_operation_ids_are_the_handlers_readable_names(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    ids = [op["operationId"] for ops in schema["paths"].values() for op in ops.values()]
    assert len(ids) == len(set(ids))
    for operation_id in ids:  # snake_case words a generated client can show as they are
        assert re.fullmatch(r"[a-z]+(_[a-z0-9]+)*", operation_id), operation_id
        assert "v1" not in operation_id, operation_id
        assert "public" not in operation_id, operation_id
    assert {"search_items", "get_job", "cancel_job", "check_duplicate"} <= set(ids)


def test_json_log_lines_carry_request_fields() -> None:
    record = logging.LogRecord("latentspace.access", logging.INFO, "x", 1, "GET / 200", (), None)
    record.request_id = "abc"
    record.status = 200
    line = json.loads(JsonFormatter().format(record))
    assert line["message"] == "GET / 200"
    assert line["request_id"] == "abc"
    assert line["status"] == 200
    assert line["level"] == "info"


def test_limits_are_stated_in_the_schema(tmp_path: Path) -> None:
    limits = LimitSettings(max_k=77, max_batch=33, max_text_chars=99, max_path_steps=11)
    schema = create_app(make_settings(tmp_path, limits=limits)).openapi()
    components = schema["components"]["schemas"]

    def prop(model: str, name: str) -> dict[str, Any]:
        found: dict[str, Any] = components[model]["properties"][name]
        return found

    assert prop("SearchRequest", "k")["maximum"] == 77
    assert prop("PathRequest", "steps")["maximum"] == 11
    for model, field in [("ItemsUpsert", "items"), ("CompositeQuery", "terms")]:
        assert prop(model, field)["maxItems"] == 33
    assert prop("TermIn", "text")["anyOf"][0]["maxLength"] == 99
    search = schema["paths"]["/v1/collections/{name}/search"]["post"]
    assert "413" in search["responses"]


def test_every_integer_a_request_sends_has_a_documented_maximum(tmp_path: Path) -> None:
    # what sizes work (k, limits, depths, candidates, chunk sizes) needs a bound a client
    # can read before it sends: every integer in a request body or a query parameter
    schema = create_app(make_settings(tmp_path)).openapi()
    components = schema["components"]["schemas"]
    bodies: set[str] = set()

    def referenced(node: Any) -> None:
        if isinstance(node, dict):
            name = node.get("$ref", "").rpartition("/")[2]
            if name and name not in bodies:
                bodies.add(name)
                referenced(components[name])
            for value in node.values():
                referenced(value)
        elif isinstance(node, list):
            for value in node:
                referenced(value)

    unbounded: list[str] = []

    def integers(where: str, node: Any) -> None:
        if not isinstance(node, dict):
            return
        if node.get("type") == "integer" and "maximum" not in node:
            unbounded.append(where)
        for key in ("anyOf", "oneOf", "allOf"):
            for sub in node.get(key, []):
                integers(where, sub)
        integers(f"{where}[]", node.get("items"))
        for name, sub in node.get("properties", {}).items():
            integers(f"{where}.{name}", sub)

    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            referenced(operation.get("requestBody", {}))
            for parameter in operation.get("parameters", []):
                integers(f"{method.upper()} {path} ?{parameter['name']}", parameter["schema"])
    for name in sorted(bodies):
        integers(name, components[name])
    assert len(bodies) > 40  # the walk reached the request bodies
    assert unbounded == []
