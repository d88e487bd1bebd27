"""The Qdrant routes' request bodies, as the OpenAPI schema shows them: free-form objects
(``service.qdrant_*`` checks them and names what it refuses), each with an example.

Keyed by operation id; ``api.openapi`` puts each in the schema's components as
``Qdrant`` + the operation's name in CamelCase.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

__all__ = ["QDRANT_BODIES", "QdrantBody"]


class QdrantBody(BaseModel):
    """A Qdrant request body, taken whole (``model_extra``) and checked by the service: a
    model only so the hot routes qualify for the lean request path (``api.lean``)."""

    model_config = ConfigDict(extra="allow")

    @property
    def fields(self) -> dict[str, Any]:
        """The body as sent."""
        return dict(self.model_extra or {})


_FILTER = {"must": [{"key": "album", "match": {"value": "rome"}}]}
_VECTOR = [0.1, 0.2, 0.3, 0.4]

QDRANT_BODIES: dict[str, dict[str, Any]] = {
    "qdrant_create_collection": {"vectors": {"size": 4, "distance": "Cosine"}},
    "qdrant_update_collection": {"quantization_config": {"scalar": {"type": "int8"}}},
    "qdrant_upsert_points": {
        "points": [{"id": 1, "vector": _VECTOR, "payload": {"album": "rome"}}]
    },
    "qdrant_retrieve_points": {"ids": [1, "5c56c793-69f3-4fbf-87e6-c4bf54c28c26"]},
    "qdrant_delete_points": {"filter": _FILTER},
    "qdrant_set_payload": {"payload": {"seen": True}, "points": [1]},
    "qdrant_overwrite_payload": {"payload": {"album": "paris"}, "points": [1]},
    "qdrant_delete_payload": {"keys": ["seen"], "points": [1]},
    "qdrant_clear_payload": {"points": [1]},
    "qdrant_scroll_points": {"filter": _FILTER, "limit": 100, "with_payload": True},
    "qdrant_count_points": {"filter": _FILTER, "exact": True},
    "qdrant_query_points": {"query": _VECTOR, "filter": _FILTER, "limit": 10},
    "qdrant_query_batch": {"searches": [{"query": _VECTOR, "limit": 3}]},
    "qdrant_query_groups": {"query": _VECTOR, "group_by": "album", "group_size": 3},
    "qdrant_search_points": {"vector": _VECTOR, "filter": _FILTER, "limit": 10},
    "qdrant_search_batch": {"searches": [{"vector": _VECTOR, "limit": 3}]},
    "qdrant_search_groups": {"vector": _VECTOR, "group_by": "album", "group_size": 3},
    "qdrant_recover_snapshot": {"location": "photos-2026-12-07-10-00-00.snapshot"},
}
