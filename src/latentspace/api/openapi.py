"""The limits in force, stated in the OpenAPI schema so schema-driven clients know them.

The limits are settings, so the request models cannot carry them; the generated schema is
annotated once per app instead (``maximum`` on ``k``, ``maxItems`` on batches, ...) from
:data:`latentspace.limits.STATED`, and every operation documents its 413.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from latentspace.api.schemas import SnapshotRestore, VectorsUpsert
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
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
