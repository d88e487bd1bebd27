"""Keys scoped to collections: ``SCOPE@GLOB:SECRET`` sees only its collections, everywhere.

A key beyond a collection's reach is answered as if the collection did not exist (404), and
no answer to it holds another collection's name or item ids: checked route by route, and
by a property test over generated keys × routes × collections.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.fixtures import make_settings

from latentspace.api import create_app
from latentspace.api.auth import FULL, Grant, KeyRing, hash_key, parse_key
from latentspace.errors import InvalidInput
from latentspace.service import collections, health

# name -> how many items (distinct, so that a count names its collection too)
SIZES = {"alpha-1": 3, "alpha-2": 4, "beta": 5, "gamma": 6}
NAMES = list(SIZES)
KEYS = {  # secret -> the key's entry in LATENTSPACE_API_KEYS
    "root": "admin:root",
    "ra": "read@alpha-*:ra",
    "wa": "write@alpha-*:wa",
    "ab": "admin@beta:ab",
    "rend": "read@*a:rend",
    "rset": "read@[bg]*:rset",
    "w1": "write@alpha-1:w1",
}


def grant(secret: str) -> Grant:
    return parse_key(KEYS[secret])[1]


def ids(name: str) -> list[str]:
    return [f"{name}.i{j}" for j in range(SIZES[name])]


def auth(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


@pytest.fixture(scope="module")
def tenants(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[TestClient, dict[str, int]]]:
    """Four collections of tiny-shapes items, a map job in two of them; the job ids."""
    folder = tmp_path_factory.mktemp("scopes")
    keys = ",".join(KEYS.values())
    with TestClient(create_app(make_settings(folder, api_keys=keys)), headers=auth("root")) as c:
        jobs = {}
        for name in NAMES:
            r = c.post("/v1/collections", json={"name": name, "model": "tiny-shapes"})
            assert r.status_code == 201, r.text
            items = [
                {"id": i, "text": f"a red circle {j}", "metadata": {"owner": name}}
                for j, i in enumerate(ids(name))
            ]
            r = c.post(f"/v1/collections/{name}/items", json={"items": items})
            assert r.status_code == 200, r.text
        for name in ("alpha-1", "beta"):
            r = c.post(f"/v1/collections/{name}/map", json={"method": "pca"})
            assert r.status_code == 202, r.text
            jobs[name] = r.json()["id"]
        yield c, jobs


def leaked(response: str, request: str, reach: Grant) -> list[str]:
    """Names and item ids of collections beyond ``reach`` found in an answer (those the
    request itself sent are echoes, not leaks)."""
    found = []
    for name in NAMES:
        if reach.covers(name):
            continue
        found += [s for s in [name, *ids(name)] if s in response and s not in request]
    return found


# (method, path, body, scope needed); {c} a collection, {i} an item id, {j} a job id
ROUTES: list[tuple[str, str, dict[str, Any] | None, str]] = [
    ("GET", "/v1/collections", None, "read"),
    ("GET", "/v1/collections/{c}", None, "read"),
    ("POST", "/v1/collections/{c}/search", {"query": {"text": "red"}, "k": 10}, "read"),
    ("POST", "/v1/collections/{c}/path", {"from": {"item": "{i}"}, "to": {"text": "red"}}, "read"),
    ("GET", "/v1/collections/{c}/items", None, "read"),
    ("GET", "/v1/collections/{c}/items/{i}", None, "read"),
    ("POST", "/v1/collections/{c}/items:get", {"ids": ["{i}"]}, "read"),
    ("POST", "/v1/collections/{c}/items:scroll", {}, "read"),
    ("POST", "/v1/collections/{c}/items:count", {}, "read"),
    ("GET", "/v1/collections/{c}/duplicates", None, "read"),
    ("GET", "/v1/collections/{c}/jobs", None, "read"),
    ("GET", "/v1/jobs/{j}", None, "read"),
    ("GET", "/v1/models", None, "read"),
    ("POST", "/v1/embeddings", {"model": "{c}", "input": "red"}, "read"),
    ("GET", "/metrics", None, "read"),
    ("GET", "/readyz", None, "read"),
    ("GET", "/qdrant/collections", None, "read"),
    ("GET", "/qdrant/collections/{c}", None, "read"),
    ("POST", "/qdrant/collections/{c}/points/scroll", {"limit": 100}, "read"),
    ("GET", "/qdrant/collections/{c}/exists", None, "read"),
    ("POST", "/v1/collections/{c}/items", {"items": [{"id": "new", "text": "x"}]}, "write"),
    ("DELETE", "/v1/collections/{c}/items/{i}", None, "write"),
    ("POST", "/v1/collections", {"name": "{c}", "model": "tiny-shapes"}, "admin"),
    ("DELETE", "/v1/collections/{c}", None, "admin"),
]


@settings(
    max_examples=2000,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    secret=st.sampled_from(list(KEYS)),
    route=st.sampled_from(ROUTES),
    name=st.sampled_from(NAMES),
    owner=st.sampled_from(NAMES),
    job_of=st.sampled_from(["alpha-1", "beta"]),
)
def test_no_answer_holds_another_scopes_names_or_ids(
    tenants: tuple[TestClient, dict[str, int]],
    secret: str,
    route: tuple[str, str, dict[str, Any] | None, str],
    name: str,
    owner: str,
    job_of: str,
) -> None:
    client, jobs = tenants
    method, template, body, needed = route
    reach = grant(secret)
    if needed != "read" and reach.allows(needed) and reach.covers(name):
        return  # a write it may make: it would change what the other cases see
    item = ids(owner)[0]

    def filled(text: str) -> str:
        return text.replace("{c}", name).replace("{i}", item).replace("{j}", str(jobs[job_of]))

    path = filled(template)
    sent = filled(json.dumps(body)) if body is not None else ""
    headers = {**auth(secret), **({"Content-Type": "application/json"} if sent else {})}
    r = client.request(method, path, headers=headers, content=sent or None)
    assert not leaked(r.text, path + sent, reach), (path, r.text)
    assert r.status_code == expected(route, reach, name, owner, job_of), (path, sent, r.text)
    if "{c}" in template and not reach.covers(name) and not template.startswith("/qdrant"):
        assert r.json()["detail"] == f"collection {name!r} does not exist"


def expected(
    route: tuple[str, str, dict[str, Any] | None, str],
    reach: Grant,
    name: str,
    owner: str,
    job_of: str,
) -> int:
    """The status a route answers a key with (writes it may make are not sent)."""
    method, template, body, needed = route
    if method == "POST" and template == "/v1/collections":
        return 409 if reach.covers(name) and reach.allows(needed) else 403  # taken / refused
    if "{c}" in template and not reach.covers(name):
        return 404  # beyond its reach: as if it did not exist
    if "{j}" in template and not reach.covers(job_of):
        return 404
    if not reach.allows(needed):
        return 403
    if template == "/v1/embeddings" and not reach.covers(name):
        return 404  # not a model served to this key
    if "{i}" in template + json.dumps(body) and owner != name:
        return 404 if "items:get" not in template else 200  # not an item of that collection
    return 200


@pytest.mark.parametrize(
    ("entry", "scope", "reach"),
    [
        ("plain-secret", "admin", None),
        ("admin:s", "admin", None),
        ("write:s", "write", None),
        ("read@photos:s", "read", "photos"),
        ("write@tenant-a-*:s", "write", "tenant-a-*"),
        ("admin@[ab]?.x:s", "admin", "[ab]?.x"),
        (f"read@photos:sha256:{hash_key('s')}", "read", "photos"),
        (f"sha256:{hash_key('s')}", "admin", None),
    ],
)
def test_the_key_grammar(entry: str, scope: str, reach: str | None) -> None:
    digest, found = parse_key(entry)
    assert found == Grant(scope, reach)
    assert digest == hash_key(entry if found == FULL and ":" not in entry else "s")


@pytest.mark.parametrize(
    ("entry", "needle"),
    [
        ("reed:s", "scope 'reed' is unknown"),
        ("READ:s", "scope 'READ' is unknown"),
        ("read@:s", "collection name or glob"),
        ("read@a/b:s", "collection name or glob"),
        ("read@a b:s", "collection name or glob"),
        ("read@photos", "SCOPE@GLOB:SECRET"),
        ("read@photos:", "empty"),
        ("write@x:sha256:abc", "64 hex digits"),
    ],
)
def test_a_malformed_key_is_refused_with_its_reason(
    tmp_path: Path, entry: str, needle: str
) -> None:
    with pytest.raises(InvalidInput, match=re.escape(needle)):
        parse_key(entry)
    with pytest.raises(InvalidInput, match="API key"):
        create_app(make_settings(tmp_path, api_keys=f"admin:root,{entry}"))


def test_globs_reach_by_the_whole_name() -> None:
    ring = KeyRing.from_settings(
        make_settings(Path("/nonexistent"), api_keys=",".join(KEYS.values()))
    )
    reach = {s: sorted(n for n in NAMES if ring.grant_of(s).covers(n)) for s in KEYS}  # type: ignore[union-attr]
    assert reach == {
        "root": NAMES,
        "ra": ["alpha-1", "alpha-2"],
        "wa": ["alpha-1", "alpha-2"],
        "ab": ["beta"],
        "rend": ["beta", "gamma"],
        "rset": ["beta", "gamma"],
        "w1": ["alpha-1"],
    }
    assert ring.grant_of("alpha-1") is None  # a name is not a key


def test_each_key_lists_its_own(tenants: tuple[TestClient, dict[str, int]]) -> None:
    client, _ = tenants
    for secret in KEYS:
        reach = grant(secret)
        mine = [n for n in NAMES if reach.covers(n)]
        listing = client.get("/v1/collections", headers=auth(secret)).json()["collections"]
        assert [(c["name"], c["count"]) for c in listing] == [(n, SIZES[n]) for n in mine]
        qdrant = client.get("/qdrant/collections", headers=auth(secret)).json()
        assert sorted(c["name"] for c in qdrant["result"]["collections"]) == mine
        models = client.get("/v1/models", headers=auth(secret)).json()["data"]
        assert {m["id"] for m in models} & set(NAMES) == set(mine)
        metrics = client.get("/metrics", headers=auth(secret)).text
        shown = re.findall(r'latentspace_index_vectors\{collection="([^"]+)"', metrics)
        assert sorted(shown) == mine


def test_a_scoped_writer_writes_its_items_only(tmp_path: Path) -> None:
    keys = "admin:root,write@t-*:tw,admin@t-*:ta"
    with TestClient(create_app(make_settings(tmp_path, api_keys=keys))) as c:
        made = c.post("/v1/collections", json={"name": "t-1", "dim": 2}, headers=auth("ta"))
        assert made.status_code == 201, made.text
        refused = c.post("/v1/collections", json={"name": "u-1", "dim": 2}, headers=auth("ta"))
        assert refused.status_code == 403, refused.text
        assert "reaches the collections 't-*' only" in refused.json()["detail"]
        assert (
            c.post(
                "/v1/collections", json={"name": "u-1", "dim": 2}, headers=auth("root")
            ).status_code
            == 201
        )
        items = {"items": [{"id": "p", "vector": [1, 0]}]}
        assert (
            c.post("/v1/collections/t-1/items", json=items, headers=auth("tw")).status_code == 200
        )
        other = c.post("/v1/collections/u-1/items", json=items, headers=auth("tw"))
        assert other.status_code == 404, other.text
        assert other.json()["detail"] == "collection 'u-1' does not exist"
        # the writer may not change the collection itself
        r = c.delete("/v1/collections/t-1", headers=auth("tw"))
        assert r.status_code == 403
        assert "needs an admin key" in r.json()["detail"]
        assert c.get("/v1/collections/u-1/items", headers=auth("root")).json()["items"] == []
        assert c.delete("/v1/collections/t-1", headers=auth("ta")).status_code == 204
        assert c.delete("/v1/collections/u-1", headers=auth("ta")).status_code == 404
        listing = c.get("/v1/collections", headers=auth("root")).json()["collections"]
        assert [x["name"] for x in listing] == ["u-1"]


def test_readiness_names_collections_only_to_keys_that_reach_them() -> None:
    ready = health.Readiness(
        True,
        unavailable={"alpha-1": "index damaged", "beta": "model missing"},
        warnings=["collection 'beta': slow disk"],
        below_recall_target=["alpha-2", "gamma"],
        damaged={"gamma": ["item x: metadata unreadable"]},
    )
    seen = health.seen_by(ready, grant("ra").covers)
    assert seen.unavailable == {"alpha-1": "index damaged"}
    assert seen.below_recall_target == ["alpha-2"]
    assert seen.damaged == {}
    assert seen.warnings == []
    assert health.seen_by(ready, None) == ready
    nothing = health.seen_by(ready, collections.nothing)
    assert (nothing.unavailable, nothing.below_recall_target, nothing.damaged) == ({}, [], {})


def test_a_scoped_admin_snapshots_through_the_request_only(tmp_path: Path) -> None:
    keys = "admin:root,admin@t-*:ta"
    with TestClient(create_app(make_settings(tmp_path, api_keys=keys))) as c:
        root, tenant = auth("root"), auth("ta")
        for name in ("t-1", "u-1"):
            assert (
                c.post("/v1/collections", json={"name": name, "dim": 2}, headers=root).status_code
                == 201
            )
            body = {"items": [{"id": f"{name}.a", "vector": [1, 0]}]}
            assert (
                c.post(f"/v1/collections/{name}/items", json=body, headers=root).status_code == 200
            )
        # the snapshot folder is the server's: another tenant's files live there
        r = c.post("/v1/collections/t-1/snapshot", json={"file": "t.lsnap"}, headers=tenant)
        assert r.status_code == 403, r.text
        assert "reaches every collection" in r.json()["detail"]
        assert (
            c.post(
                "/v1/collections/u-1/snapshot", json={"file": "u.lsnap"}, headers=root
            ).status_code
            == 201
        )
        r = c.post("/v1/collections/t-2/restore", json={"file": "u.lsnap"}, headers=tenant)
        assert r.status_code == 403, r.text
        # Qdrant's recover reads the folder too: only snapshots of its own collections
        r = c.put(
            "/qdrant/collections/t-2/snapshots/recover",
            json={"location": "u.lsnap"},
            headers=tenant,
        )
        assert r.status_code == 404, r.text
        assert c.get("/v1/collections/t-2", headers=root).status_code == 404
        # downloaded and uploaded in the request, a snapshot goes round
        tar = c.post("/v1/collections/t-1/snapshot", headers=tenant)
        assert tar.status_code == 200, tar.text
        r = c.post(
            "/v1/collections/t-2/restore",
            content=tar.content,
            headers={**tenant, "Content-Type": "application/x-tar"},
        )
        assert r.status_code == 201, r.text
        assert c.get("/v1/collections/t-2/items/t-1.a", headers=tenant).status_code == 200
        r = c.post(
            "/v1/collections/u-2/restore",
            content=tar.content,
            headers={**tenant, "Content-Type": "application/x-tar"},
        )
        assert r.status_code == 404, r.text  # beyond its reach


def _routes_of(app: Any) -> list[tuple[str, str]]:
    """(method, path) of every API route that names a collection (``{name}``)."""
    from fastapi.routing import APIRoute

    found = []
    stack = list(app.router.routes)
    while stack:
        route = stack.pop()
        if isinstance(route, APIRoute) and "{name}" in route.path_format:
            found += [(m, route.path_format) for m in sorted(route.methods - {"HEAD"})]
        inner = getattr(route, "original_router", route)  # FastAPI's included routers
        stack += getattr(inner, "routes", [])
    return sorted(set(found))


def test_every_route_of_a_collection_answers_404_beyond_a_keys_reach(
    tenants: tuple[TestClient, dict[str, int]],
) -> None:
    client, _ = tenants
    routes = _routes_of(client.app)
    assert len(routes) > 60  # every route of the native and the Qdrant API
    for secret in ("ra", "wa", "ab"):
        reach = grant(secret)
        for method, template in routes:
            for name in NAMES:
                if reach.covers(name):
                    continue
                path = re.sub(r"\{(?!name\})\w+\}", "x", template).replace("{name}", name)
                r = client.request(method, path, headers=auth(secret), json={})
                assert r.status_code == 404, (secret, method, path, r.text)
                assert not leaked(r.text, path, reach), (method, path, r.text)
