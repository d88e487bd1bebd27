"""The map view's file and placers, without a server: a saved fit reads back whole, a file
that is not this collection's fit of this format reads as damage, and the placers put new
points where the fit would."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from latentspace.live import maps
from latentspace.live.maps import (
    Cluster,
    Fitted,
    LinearPlacer,
    MapView,
    MapViews,
    NeighbourPlacer,
)
from latentspace.store.tables import CollectionRow

DIM, N = 8, 60


def row(collection_id: int = 3, fingerprint: str = "fp-a") -> CollectionRow:
    return CollectionRow(id=collection_id, name="c", dim=DIM, fingerprint=fingerprint)


def unit(n: int, seed: int) -> np.ndarray:
    x = np.random.default_rng(seed).normal(size=(n, DIM)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def fitted(placer: maps.Placer | None = None) -> Fitted:
    rng = np.random.default_rng(1)
    view = MapView(
        seq=9,
        fitted_seq=9,
        method="pca" if placer is None or isinstance(placer, LinearPlacer) else "umap",
        ids=[f"i{i}" for i in range(N)],
        item_ids=np.arange(10, 10 + N, dtype=np.int64),
        xy=rng.normal(size=(N, 2)).astype(np.float32),
        cluster=(np.arange(N) % 3 - 1).astype(np.int64),
        clusters=[Cluster(0, 20, "zero", "i1", 0.5, -0.5), Cluster(1, 20, None, "i2", 1.0, 2.0)],
    )
    if placer is None:
        placer = LinearPlacer(
            rng.normal(size=DIM).astype(np.float32), rng.normal(size=(2, DIM)).astype(np.float32)
        )
    return Fitted(view, placer)


def assert_same(a: Fitted, b: Fitted) -> None:
    for field in ("seq", "fitted_seq", "method", "ids", "clusters", "placed"):
        assert getattr(a.view, field) == getattr(b.view, field), field
    for field in ("item_ids", "xy", "cluster"):
        np.testing.assert_array_equal(getattr(a.view, field), getattr(b.view, field))
    assert type(a.placer) is type(b.placer)
    for name, value in vars(a.placer).items():
        np.testing.assert_array_equal(value, getattr(b.placer, name))


@pytest.mark.parametrize("kind", ["linear", "neighbours"])
def test_a_saved_fit_reads_back_whole(tmp_path: Path, kind: str) -> None:
    placer = None if kind == "linear" else NeighbourPlacer.of(unit(N, 2), fitted().view.xy)
    fit = fitted(placer)
    MapViews(tmp_path).keep_fitted(row(), fit)
    fresh = MapViews(tmp_path)  # another process: reads the file
    back = fresh.fitted(row())
    assert back is not None
    assert fresh.damage(row()) is None
    assert_same(back, fit)


def test_another_models_space_or_format_is_damage(tmp_path: Path) -> None:
    MapViews(tmp_path).keep_fitted(row(), fitted())
    views = MapViews(tmp_path)
    assert views.fitted(row(fingerprint="fp-b")) is None
    assert "another model's space" in (views.damage(row(fingerprint="fp-b")) or "")
    # a file of another format version, checksum and all, is not read either
    path = views.path(row())
    with np.load(path, allow_pickle=False) as npz:
        arrays = {name: npz[name] for name in npz.files}
    header = json.loads(arrays.pop("header").tobytes())
    header["version"] = 99
    raw = json.dumps(header).encode()
    del arrays["sha256"]
    with path.open("wb") as f:
        np.savez(
            f,
            header=np.frombuffer(raw, dtype=np.uint8),
            sha256=maps._digest(raw, arrays),
            **arrays,
        )
    views = MapViews(tmp_path)
    assert views.fitted(row()) is None
    assert "format version 1" in (views.damage(row()) or "")


def test_a_damaged_file_is_read_again_only_once_it_changed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    views = MapViews(tmp_path)
    path = views.path(row())
    path.parent.mkdir(parents=True)
    path.write_bytes(b"garbage")
    loads = []
    real = maps._load
    monkeypatch.setattr(maps, "_load", lambda *a: loads.append(1) or real(*a))
    for _ in range(3):
        assert views.fitted(row()) is None
        assert "does not load" in (views.damage(row()) or "")
    assert len(loads) == 1
    path.unlink()  # gone: no map, and no damage
    assert views.fitted(row()) is None
    assert views.damage(row()) is None
    views.keep_fitted(row(), fitted())
    assert MapViews(tmp_path).fitted(row()) is not None


def test_the_linear_placer_is_pcas_transform() -> None:
    from sklearn.decomposition import PCA

    x = unit(N, 4)
    pca = PCA(n_components=2, random_state=0).fit(x)
    placer = LinearPlacer(pca.mean_.astype(np.float32), pca.components_.astype(np.float32))
    new = unit(10, 5)
    np.testing.assert_allclose(placer.place(new), pca.transform(new), atol=1e-5)


def test_the_neighbour_placer_lands_beside_the_nearest_fitted_points(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rng = np.random.default_rng(6)
    centres = unit(4, 7)
    label = np.arange(400) % 4
    x = centres[label] + 0.05 * rng.normal(size=(400, DIM)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    corners = np.array([[0, 0], [10, 0], [0, 10], [10, 10]], dtype=np.float32)
    xy = corners[label] + rng.normal(size=(400, 2)).astype(np.float32)
    monkeypatch.setattr(maps, "ANCHORS", 100)
    placer = NeighbourPlacer.of(x, xy)
    assert placer.anchors.shape == (100, DIM)  # bounded, a fixed sample
    assert placer.anchors.dtype == np.float16
    again = NeighbourPlacer.of(x, xy)
    np.testing.assert_array_equal(placer.anchor_xy, again.anchor_xy)
    # points near each centre land in its region of the map, far from the others
    new = centres[label[:40]] + 0.05 * rng.normal(size=(40, DIM)).astype(np.float32)
    placed = placer.place(new / np.linalg.norm(new, axis=1, keepdims=True))
    assert placed.shape == (40, 2)
    assert placed.dtype == np.float32
    middle = np.stack([xy[label == k].mean(axis=0) for k in range(4)])
    nearest = np.argmin(np.linalg.norm(placed[:, None] - middle[None], axis=2), axis=1)
    np.testing.assert_array_equal(nearest, label[:40])
    # a fitted anchor itself lands within its neighbourhood's spread of its own point
    own = placer.place(placer.anchors[:5].astype(np.float32))
    assert np.linalg.norm(own - placer.anchor_xy[:5], axis=1).max() < 3.0
    # no anchors past those a batch compares at once are lost
    monkeypatch.setattr(maps, "_BATCH", 7)
    np.testing.assert_allclose(
        placer.place(new / np.linalg.norm(new, axis=1, keepdims=True)), placed, atol=1e-5
    )
