"""Save → load round trips; damaged files and mismatched manifests are refused."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from latentspace.errors import IndexCorrupted, VectorIndexError
from latentspace.index import ExactIndex, FaissIndex, IndexSpec, load_index, read_manifest

KINDS = ["flat", "hnsw", "ivf", "ivfpq"]


def build(kind: str, data: tuple[np.ndarray, np.ndarray]) -> FaissIndex:
    params = {"nlist": 16, "nprobe": 16} if kind in ("ivf", "ivfpq") else {}
    index = FaissIndex(IndexSpec(kind, "cosine", params), data[1].shape[1])
    index.add(*data)
    index.remove(data[0][:50])
    return index


@pytest.mark.parametrize("kind", KINDS)
def test_round_trip(kind: str, tmp_path: Path, small_data: tuple[np.ndarray, np.ndarray]) -> None:
    index = build(kind, small_data)
    index.save(tmp_path, fingerprint="f" * 64, oplog_seq=41)
    loaded, manifest = load_index(tmp_path, fingerprint="f" * 64, dim=32)
    assert manifest.count == len(index) == len(loaded) == 2950
    assert manifest.oplog_seq == 41
    assert manifest.spec["kind"] == kind
    assert loaded.spec == index.spec
    queries = small_data[1][:40]
    before, after = index.search(queries, 10), loaded.search(queries, 10)
    np.testing.assert_array_equal(before.ids, after.ids)
    np.testing.assert_allclose(before.scores, after.scores, rtol=1e-5)
    loaded.add(small_data[0][:1], small_data[1][:1])  # a loaded index stays writable
    assert small_data[0][0] in loaded


def test_manifest_records_what_load_checks(
    tmp_path: Path, small_data: tuple[np.ndarray, np.ndarray]
) -> None:
    import faiss

    build("hnsw", small_data).save(tmp_path, fingerprint="a" * 64, oplog_seq=7)
    manifest = read_manifest(tmp_path)
    assert manifest.faiss_version == faiss.__version__
    assert manifest.dim == 32
    assert manifest.fingerprint == "a" * 64
    assert sorted(name.split(".")[0] for name in manifest.checksums) == ["index", "slots"]
    assert all((tmp_path / name).is_file() for name in manifest.checksums)
    assert len(manifest.dead) == 50


def damage_truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def damage_flip(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("damage", [damage_truncate, damage_flip, Path.unlink])
@pytest.mark.parametrize("prefix", ["index.", "slots."])
def test_damaged_files_are_never_served(
    tmp_path: Path, small_data: tuple[np.ndarray, np.ndarray], damage: object, prefix: str
) -> None:
    build("flat", small_data).save(tmp_path)
    (path,) = tmp_path.glob(f"{prefix}*")
    damage(path)  # type: ignore[operator]
    with pytest.raises(IndexCorrupted, match=path.name):
        load_index(tmp_path)


def test_saving_again_replaces_the_old_generation(
    tmp_path: Path, small_data: tuple[np.ndarray, np.ndarray]
) -> None:
    index = build("flat", small_data)
    index.save(tmp_path)
    index.remove(small_data[0][100:200])
    index.save(tmp_path)
    assert len(list(tmp_path.iterdir())) == 3
    assert len(load_index(tmp_path)[0]) == 2850


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"fingerprint": "b" * 64}, "built for encoder"),
        ({"dim": 16}, "dim 32, expected 16"),
    ],
)
def test_mismatch_with_the_caller_is_refused(
    tmp_path: Path, small_data: tuple[np.ndarray, np.ndarray], change: dict[str, object], match: str
) -> None:
    build("flat", small_data).save(tmp_path, fingerprint="a" * 64)
    with pytest.raises(IndexCorrupted, match=match):
        load_index(tmp_path, **{"fingerprint": "a" * 64, "dim": 32, **change})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("field", "value", "match"),
    [
        ("faiss_version", "0.0.1", "written by faiss 0.0.1"),
        ("count", 5, "manifest says 5 vectors"),
        ("format_version", 99, "index format 99"),
    ],
)
def test_manifest_that_disagrees_is_refused(
    tmp_path: Path, small_data: tuple[np.ndarray, np.ndarray], field: str, value: object, match: str
) -> None:
    build("flat", small_data).save(tmp_path)
    path = tmp_path / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest[field] = value
    path.write_text(json.dumps(manifest))
    with pytest.raises(IndexCorrupted, match=match):
        load_index(tmp_path)


def test_missing_or_garbled_manifest(tmp_path: Path) -> None:
    with pytest.raises(IndexCorrupted, match="no index manifest"):
        load_index(tmp_path)
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(IndexCorrupted, match="unreadable"):
        load_index(tmp_path)


@pytest.mark.parametrize("kind", ["flat", "ivf"])
def test_memory_mapped_load_is_read_only(
    kind: str, tmp_path: Path, small_data: tuple[np.ndarray, np.ndarray]
) -> None:
    index = build(kind, small_data)
    index.save(tmp_path)
    mapped, _ = load_index(tmp_path, mmap=True)
    queries = small_data[1][60:70]
    np.testing.assert_array_equal(mapped.search(queries, 5).ids, index.search(queries, 5).ids)
    with pytest.raises(VectorIndexError, match="read-only"):
        mapped.add(np.array([123_456]), small_data[1][:1])


def test_empty_index_round_trips(tmp_path: Path) -> None:
    FaissIndex(IndexSpec("hnsw"), 8).save(tmp_path)
    loaded, manifest = load_index(tmp_path)
    assert len(loaded) == 0
    assert manifest.count == 0


def test_exact_index_round_trips(tmp_path: Path, small_data: tuple[np.ndarray, np.ndarray]) -> None:
    index = ExactIndex(32)
    index.add(*small_data)
    index.save(tmp_path)
    loaded = ExactIndex.load(tmp_path)
    np.testing.assert_array_equal(
        loaded.search(small_data[1][:5], 5).ids, index.search(small_data[1][:5], 5).ids
    )


WRITER = """
import sys, numpy as np
from latentspace.index import FaissIndex, IndexSpec
directory, kind = sys.argv[1], sys.argv[2]
rng = np.random.default_rng(0)
index = FaissIndex(IndexSpec(kind), 32)
n = 0
while True:
    index.add(np.arange(n, n + 500), rng.normal(size=(500, 32)).astype("float32"))
    n += 500
    index.save(directory, oplog_seq=n)
    print("saved", n, flush=True)
"""


@pytest.mark.parametrize("kind", ["flat", "hnsw"])
def test_sigkill_during_saves_leaves_a_loadable_index(kind: str, tmp_path: Path) -> None:
    """A writer saving in a loop is SIGKILLed after a random number of saves, while it
    writes the next one; what is on disk must load and hold at least the last acknowledged
    save."""
    rng = np.random.default_rng(1)
    for _ in range(5):
        child = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(tmp_path), kind],
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "OMP_NUM_THREADS": "1"},
        )
        assert child.stdout is not None
        acknowledged = 0
        for _ in range(int(rng.integers(1, 6))):
            line = child.stdout.readline().split()
            assert line, "the writer died before acknowledging a save"
            assert line[0] == "saved"
            acknowledged = int(line[1])
        child.send_signal(signal.SIGKILL)
        child.wait()
        child.stdout.close()
        index, manifest = load_index(tmp_path)
        assert len(index) == manifest.count == manifest.oplog_seq
        assert manifest.oplog_seq >= acknowledged
