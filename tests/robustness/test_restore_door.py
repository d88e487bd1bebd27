"""Restore keeps the door's rules: random item documents, some poisoned, are sent both as an
upsert (``POST …/items``) and inside a resealed snapshot (``POST …/restore``, its checksums
recomputed), and each is accepted by both or refused by both."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.fixtures import ADMIN_KEY, make_settings, resealed, tar_members

from latentspace.api import create_app
from latentspace.settings import LimitSettings

TAR = {"Content-Type": "application/x-tar"}
LIMITS = LimitSettings(max_text_chars=200, max_metadata_bytes=2000, max_json_depth=6)


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    settings = make_settings(tmp_path_factory.mktemp("door"), limits=LIMITS)
    headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
    with TestClient(create_app(settings), headers=headers) as c:
        assert c.post("/v1/collections", json={"name": "base", "dim": 4}).is_success
        item = {"id": "seed", "vector": [1.0, 0.0, 0.0, 0.0]}
        assert c.post("/v1/collections/base/items", json={"items": [item]}).is_success
        yield c


def with_item(base: list[tuple[str, bytes]], doc: dict[str, Any]) -> bytes:
    """The base snapshot holding ``doc`` as its one item, checksums recomputed."""

    def edit(manifest: dict[str, Any], parts: dict[str, bytes]) -> None:
        stored = json.loads(parts["items.jsonl"].decode().splitlines()[0])
        parts["items.jsonl"] = (json.dumps({**stored, **doc}) + "\n").encode()

    return resealed(base, edit)


def nested(depth: int) -> dict[str, Any]:
    doc: dict[str, Any] = {"leaf": 1}
    for _ in range(depth):
        doc = {"a": doc}
    return doc


strings = st.one_of(
    st.text(max_size=20),
    st.sampled_from(["a\x00b", "x \ud800 y", " ", "", "ok", "a/b", ".", "é" * 201, "u" * 4100]),
)
values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    strings,
)
metadata = st.one_of(
    st.dictionaries(st.text(max_size=5), values, max_size=4),
    st.integers(0, 9).map(nested),
    st.just({"big": "x" * 2500}),
)
docs = st.fixed_dictionaries(
    {"id": strings.filter(bool), "metadata": metadata},
    optional={"text": strings, "uri": strings},  # document_id comes by /documents only
)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(doc=docs)
def test_restore_and_upsert_accept_and_refuse_the_same_items(
    client: TestClient, doc: dict[str, Any]
) -> None:
    vector = [0.0, 1.0, 0.0, 0.0]
    item = {**doc, "vector": vector}
    body = json.dumps({"items": [item]}, allow_nan=True)
    upsert = client.post(
        "/v1/collections/base/items", content=body, headers={"content-type": "application/json"}
    )
    accepted = upsert.status_code == 200 and upsert.json()["items"][0]["status"] != "error"
    assert upsert.status_code < 500, upsert.text
    if accepted:  # leave the base as it was
        assert client.delete(f"/v1/collections/base/items/{doc['id']}").status_code == 204
    base = tar_members(client.post("/v1/collections/base/snapshot").content)
    restore_doc = {**{k: None for k in ("text", "uri", "document_id")}, **doc}
    restored = client.post(
        "/v1/collections/copy/restore?replace=true",
        content=with_item(base, restore_doc),
        headers=TAR,
    )
    assert restored.status_code < 500, restored.text
    assert (restored.status_code == 201) is accepted, (doc, upsert.text, restored.text)


def test_the_generator_reaches_both_answers(client: TestClient) -> None:
    # the property above is only worth something if both outcomes occur: one of each
    good = {"id": "fine", "metadata": {"a": 1}, "text": "ok"}
    bad = {"id": "poisoned", "metadata": {"a": math.inf}}
    base = tar_members(client.post("/v1/collections/base/snapshot").content)
    for doc, status in ((good, 201), (bad, 422)):
        r = client.post(
            "/v1/collections/copy/restore?replace=true",
            content=with_item(base, {"text": None, "uri": None, **doc}),
            headers=TAR,
        )
        assert r.status_code == status, r.text
