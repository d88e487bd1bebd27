"""Batch embedding on a real local Ray cluster (`ingest --ray`), in a loopback-only network.

Ray binds to the machine's primary address unless the only interface is loopback, so the
commands run inside a fresh network namespace (``unshare -n``, as root) whose only link is
``lo``: nothing the test starts can reach beyond 127.0.0.1.
"""

from __future__ import annotations

import io
import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from tests.fixtures import make_settings

from latentspace.embedder import create_encoder
from latentspace.embedder.images import decode_image
from latentspace.embedder.models.shapes import draw_shape
from latentspace.service import lifecycle, search
from latentspace.service.queries import Query
from latentspace.service.terms import QueryTerm
from latentspace.store import repository as repo

pytest.importorskip("ray")
pytestmark = [pytest.mark.ray, pytest.mark.slow]

PAIRS = [("red", "circle"), ("blue", "square"), ("green", "triangle")]

# Ray's own metrics exporter thread once crashed a CI run (SIGSEGV in its OpenTelemetry
# collection at Ray 2.60); nothing reads metrics in a loopback-only namespace, so it is off.
NO_RAY_METRICS = {"RAY_enable_metrics_collection": "0"}


def loopback_only(command: list[str], env: dict[str, str], *, expect: int = 0) -> Any:
    """Run ``command`` in a new network namespace holding only ``lo``; its last JSON line."""
    if os.geteuid() != 0 or shutil.which("unshare") is None or shutil.which("ip") is None:
        reason = "needs root, unshare and ip for a loopback-only network namespace"
        if os.environ.get("LATENTSPACE_REQUIRE_RAY"):
            pytest.fail(reason)
        pytest.skip(reason)
    script = "ip link set lo up && exec " + shlex.join(command)
    done = subprocess.run(
        ["unshare", "-n", "sh", "-c", script],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == expect, done.stderr[-4000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def images(folder: Path) -> dict[str, bytes]:
    folder.mkdir(parents=True)
    out = {}
    for i in range(15):
        colour, shape = PAIRS[i % 3]
        buffer = io.BytesIO()
        draw_shape(colour, shape, np.random.default_rng(i)).save(buffer, format="PNG")
        out[f"{colour}-{shape}-{i}.png"] = buffer.getvalue()
        (folder / f"{colour}-{shape}-{i}.png").write_bytes(out[f"{colour}-{shape}-{i}.png"])
    (folder / "broken.png").write_bytes(b"not an image at all")
    return out


@pytest.mark.timeout(900)
def test_ingest_on_ray_stores_what_local_encoding_gives_and_resumes(tmp_path: Path) -> None:
    written = images(tmp_path / "photos")
    texts = ["a red circle", "a blue square", "a green triangle"]
    table = pa.table({"id": ["t0", "t1", "t2", "blank"], "text": [*texts, "   "]})
    pq.write_table(table, tmp_path / "texts.parquet")
    data = tmp_path / "data"
    env = {
        **os.environ,
        "LATENTSPACE_DATA_DIR": str(data),
        "LATENTSPACE_ENCODER__DEVICE": "cpu",
        "HF_HUB_OFFLINE": "1",
        "RAY_USAGE_STATS_ENABLED": "0",
        **NO_RAY_METRICS,
    }
    cli = [sys.executable, "-m", "latentspace.cli", "ingest"]
    photos = [*cli, "shapes", str(tmp_path / "photos"), "--ray", "--json"]
    # the broken file is reported, and makes the command exit 1
    first = loopback_only([*photos, "--actors", "1"], env, expect=1)
    assert (first["created"], len(first["failed"])) == (15, 1)
    assert "broken.png" in next(iter(first["failed"]))
    again = loopback_only(photos, env, expect=1)  # every stored file skipped before encoding
    assert (again["created"], again["skipped"]) == (0, 15)
    notes = loopback_only(
        [*cli, "notes", str(tmp_path / "texts.parquet"), "--ray", "--json"], env, expect=1
    )
    assert notes["created"] == 3
    assert list(notes["failed"]) == ["blank"]  # a blank text is refused by name

    encoder = create_encoder("tiny-shapes")
    ctx = lifecycle.start(make_settings(data))
    try:
        with ctx.sessions() as session:
            shapes = repo.get_collection(session=session, name="shapes")
            ids, vectors = repo.live_vectors(session=session, collection=shapes)
            rows = repo.items_by_ids(session=session, item_ids=ids.tolist())
        # the same vectors a local encode gives, item by item
        by_name = {rows[int(i)].external_id: v for i, v in zip(ids, vectors, strict=True)}
        assert sorted(by_name) == sorted(written)
        local = encoder.encode_images([decode_image(written[n], max_pixels=10**8) for n in by_name])
        np.testing.assert_allclose(np.stack(list(by_name.values())), local, atol=1e-5)
        # the index was built once at the end, from SQL, and text finds the right shapes
        answer = search.search(ctx, "shapes", Query([QueryTerm(text="a red circle")], k=5))
        assert all(h.id.startswith("red-circle") for h in answer.hits)
        with ctx.sessions() as session:
            notes_row = repo.get_collection(session=session, name="notes")
            _, text_vectors = repo.live_vectors(session=session, collection=notes_row)
        np.testing.assert_allclose(
            np.sort(text_vectors, axis=0), np.sort(encoder.encode_text(texts), axis=0), atol=1e-5
        )
    finally:
        lifecycle.stop(ctx)


@pytest.mark.timeout(600)
def test_sharded_search_on_ray_serve_merges_to_the_exact_answer(tmp_path: Path) -> None:
    # Two Serve shards behind the HTTP API (tests/ray_jobs.py), 3,000 × 16-d vectors.
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "RAY_USAGE_STATS_ENABLED": "0", **NO_RAY_METRICS}
    root = Path(__file__).resolve().parents[1]
    env["PYTHONPATH"] = os.pathsep.join([str(root), env.get("PYTHONPATH", "")])
    got = loopback_only([sys.executable, "-m", "tests.ray_jobs", "shards", str(tmp_path)], env)
    # an exact index sharded gives the unsharded (exact) top-10 for every query, filtered
    # (an allow-list every shard applies) and paged (offset) too
    assert got["flat_same_top10"] == 100
    assert got["filter_same"] == 20
    assert got["offset_same"] == 20
    # HNSW: recall@10 sharded within 0.01 of one unsharded index on the same vectors
    assert got["hnsw_recall_sharded"] >= got["hnsw_recall_local"] - 0.01
    # a broad filter (post-filter predicate) after the merge: only passing items, all found
    assert got["predicate_only_even"]
    assert got["predicate_recall"] >= 0.99
    # writes reach every shard before they return
    assert got["deleted_gone"]
    assert got["inserted_first"]
    stats = got["stats"]
    assert (stats["count"], stats["index"]["params"]["shards"]) == (3000, 2)
