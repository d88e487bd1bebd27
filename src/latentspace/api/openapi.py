"""The limits in force, stated in the OpenAPI schema so schema-driven clients know them.

The limits are settings, so the request models cannot carry them; the generated schema is
annotated once per app instead (``maximum`` on ``k``, ``maxItems`` on batches, ...) from
:data:`latentspace.limits.STATED`, and every operation documents its 413. The ``/qdrant``
routes' errors are documented in Qdrant's shape, as they are answered.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from latentspace.api.errors import QDRANT_PREFIX
from latentspace.api.schemas import SnapshotRestore, VectorsUpsert
from latentspace.api.schemas.qdrant import QDRANT_BODIES
from latentspace.limits import STATED
from latentspace.settings import LimitSettings

__all__ = ["state_limits"]

# Request bodies that routes parse themselves (several media types), so FastAPI does not
# put them in the schema's components.
_BODY_ONLY = (VectorsUpsert, SnapshotRestore)


def _annotate(prop: dict[str, Any], keyword: str, value: int) -> None:
    # A nullable field is {"anyOf": [{...}, {"type": "null"}]}: the limit goes on the non-null
    # branch that the keyword applies to.
    wanted = {"maximum": ("integer", "number"), "maxItems": ("array",), "maxLength": ("string",)}
    for branch in [prop, *prop.get("anyOf", [])]:
        if branch.get("type") in wanted[keyword]:
            branch[keyword] = value


_QDRANT_ERROR = {
    "type": "object",
    "description": "An error in Qdrant's shape.",
    "properties": {
        "status": {"type": "object", "properties": {"error": {"type": "string"}}},
        "time": {"type": "number"},
    },
}


def _qdrant_errors(schema: dict[str, Any]) -> None:
    # The /qdrant routes answer errors in Qdrant's shape (see api.errors.error_body), and a
    # 404 wherever the path names a collection.
    schema["components"]["schemas"]["QdrantError"] = _QDRANT_ERROR
    content = {"application/json": {"schema": {"$ref": "#/components/schemas/QdrantError"}}}
    for path, operations in schema["paths"].items():
        if not path.startswith(QDRANT_PREFIX):
            continue
        for op in operations.values():
            _qdrant_body(schema, op)
            if "{name}" in path:
                op["responses"].setdefault("404", {"description": "Not Found"})
            for status, response in op["responses"].items():
                if status[0] in "45":
                    response["content"] = content


def _qdrant_body(schema: dict[str, Any], op: dict[str, Any]) -> None:
    # A free-form body (the service checks it) shown as a named object with its example.
    example = QDRANT_BODIES.get(op["operationId"])
    body = op.get("requestBody", {}).get("content", {}).get("application/json")
    if example is None or body is None:
        return
    name = "Qdrant" + "".join(w.title() for w in op["operationId"].split("_")[1:])
    schema["components"]["schemas"][name] = {
        "type": "object",
        "additionalProperties": True,
        "title": name,
        "examples": [example],
    }
    ref = {"$ref": f"#/components/schemas/{name}"}
    body["schema"] = {"anyOf": [ref, {"type": "null"}]}


def state_limits(app: FastAPI, limits: LimitSettings) -> None:
    """Make ``app.openapi()`` state ``limits`` on the request fields they bound."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = generate()
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            for body in _BODY_ONLY:  # bodies a route reads itself, referenced by name
                components[body.__name__] = body.model_json_schema(
                    ref_template="#/components/schemas/{model}"
                )
            for (model, field), (setting, keyword) in STATED.items():
                for name in (model, f"{model}-Input"):
                    prop = components.get(name, {}).get("properties", {}).get(field)
                    if prop is not None:
                        _annotate(prop, keyword, int(getattr(limits, setting)))
            _qdrant_errors(schema)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
