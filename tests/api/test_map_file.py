"""A collection's saved map is plain arrays, never a pickle, and damage to it is contained.

The fit is saved as ``data_dir/maps/<collection id>/map.npz`` (``np.savez``, read with
``allow_pickle=False``) carrying the collection's id and fingerprint. A file that does not
load — cut short, bytes flipped, garbage, a pickle, another collection's, an old
``map.pkl`` — is never served nor unpickled: the map answers the 404 that says to fit it
again, ``/readyz`` names the damage, and a refit replaces whatever is in the file's place
(a folder included) and clears it.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from tests.fixtures import ADMIN_KEY, assert_problem, fitted_map

from latentspace.api import create_app
from latentspace.settings import Settings

DIM = 16


@contextmanager
def serve(settings: Settings) -> Iterator[TestClient]:
    """A started app on ``settings`` (closed, and its data directory let go, at the end)."""
    app = create_app(settings)
    with TestClient(app, headers={"Authorization": f"Bearer {ADMIN_KEY}"}) as c:
        yield c


def clustered(n: int, seed: int, centres: int = 3) -> np.ndarray:
    """``n`` unit vectors around ``centres`` directions."""
    rng = np.random.default_rng(seed)
    middle = rng.normal(size=(centres, DIM))
    x = middle[np.arange(n) % centres] + 0.15 * rng.normal(size=(n, DIM))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def add(c: TestClient, name: str, x: np.ndarray, prefix: str = "v") -> None:
    items = [{"id": f"{prefix}{i}", "vector": v.tolist()} for i, v in enumerate(x)]
    r = c.post(f"/v1/collections/{name}/items", json={"items": items})
    assert r.status_code == 200, r.text


def create(c: TestClient, name: str, x: np.ndarray) -> None:
    r = c.post("/v1/collections", json={"name": name, "dim": DIM, "index": "flat"})
    assert r.status_code == 201, r.text
    add(c, name, x)


def fit(c: TestClient, name: str, method: str = "pca") -> dict[str, Any]:
    return fitted_map(c, name, method=method)


def folders(settings: Settings) -> set[Path]:
    root = Path(settings.data_dir) / "maps"
    return set(root.iterdir()) if root.is_dir() else set()


def fitted_folder(c: TestClient, settings: Settings, name: str) -> Path:
    """The folder the collection's map is saved in (the one its first fit made)."""
    before = folders(settings)
    fit(c, name)
    (made,) = folders(settings) - before
    return made


def damaged(c: TestClient) -> dict[str, list[str]]:
    ready = c.get("/readyz").json()
    found: dict[str, list[str]] = ready.get("damaged", {})
    assert (ready["status"] == "ok") == (not found), ready
    return found


def assert_refit_repairs(c: TestClient, name: str, folder: Path) -> None:
    """A refit works, replaces what was in the file's place, and clears the damage."""
    view = fit(c, name)
    assert len(view["ids"]) == len(set(view["ids"])) > 0
    assert damaged(c) == {}
    assert (folder / "map.npz").is_file()
    assert not (folder / "map.pkl").exists()
    with np.load(folder / "map.npz", allow_pickle=False) as npz:
        assert "xy" in npz.files


class _Marker:
    """Unpickling this makes a folder at ``path``: proof that the pickle ran."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Callable[[str], None], tuple[str]]:
        return os.mkdir, (str(self.path),)


# -- (1) no pickle ---------------------------------------------------------------------------


def test_the_saved_map_is_plain_arrays_naming_its_collection(settings: Settings) -> None:
    with serve(settings) as c:
        create(c, "a", clustered(30, seed=1))
        folder = fitted_folder(c, settings, "a")
        view = c.get("/v1/collections/a/map").json()
    assert sorted(p.name for p in folder.iterdir()) == ["map.npz"]
    data = (folder / "map.npz").read_bytes()
    assert data[:4] == b"PK\x03\x04"  # a zip of .npy arrays, not a pickle stream
    with pytest.raises(pickle.UnpicklingError):
        pickle.loads(data)
    with np.load(folder / "map.npz", allow_pickle=False) as npz:
        arrays = {name: npz[name] for name in npz.files}
    assert all(a.dtype != object for a in arrays.values())
    header = json.loads(arrays["header"].tobytes())
    assert header["collection"] == int(folder.name)
    assert header["fingerprint"]
    assert header["version"] == 1
    assert header["ids"] == view["ids"]
    np.testing.assert_allclose(arrays["xy"][:, 0], view["x"], atol=1e-4)
    # PCA places new points by its mean and components, kept as arrays
    assert arrays["components"].shape == (2, DIM)
    assert arrays["mean"].shape == (DIM,)
    with serve(settings) as c:  # read back after a restart: the same map
        assert c.get("/v1/collections/a/map").json() == view


@pytest.mark.parametrize("where", ["map.npz", "map.pkl"])
def test_a_pickle_in_the_map_folder_is_never_unpickled(
    settings: Settings, tmp_path: Path, where: str
) -> None:
    marker = tmp_path / "unpickled"
    with serve(settings) as c:
        create(c, "a", clustered(30, seed=1))
        folder = fitted_folder(c, settings, "a")
    for old in folder.iterdir():
        old.unlink()
    (folder / where).write_bytes(pickle.dumps(_Marker(marker)))
    with serve(settings) as c:
        r = c.get("/v1/collections/a/map")
        assert_problem(r, 404, "not-found", "fits it again")
        assert not marker.exists(), "the pickle was loaded"
        (line,) = damaged(c)["a"]
        assert line.startswith("map: "), line
        assert "fit the map again" in line, line
        if where == "map.pkl":
            assert "earlier version" in line, line
        assert_refit_repairs(c, "a", folder)
    assert not marker.exists()


# -- (2) damaged files -----------------------------------------------------------------------


def _flip(data: bytes) -> bytes:
    middle = len(data) // 2
    return data[:middle] + bytes([data[middle] ^ 0xFF]) + data[middle + 1 :]


DAMAGE: dict[str, Callable[[bytes], bytes]] = {
    "cut short": lambda data: data[: len(data) // 2],
    "empty": lambda data: b"",
    "flipped byte": _flip,
    "garbage": lambda data: os.urandom(len(data)),
    "a .npy array": lambda data: _npy(np.zeros(3)),
}


def _npy(x: np.ndarray) -> bytes:
    out = io.BytesIO()
    np.save(out, x)
    return out.getvalue()


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_a_damaged_map_file_reads_as_no_map_until_a_refit(settings: Settings, damage: str) -> None:
    with serve(settings) as c:
        create(c, "a", clustered(30, seed=1))
        create(c, "b", clustered(30, seed=2))
        folder = fitted_folder(c, settings, "a")
        fit(c, "b")
        b_before = c.get("/v1/collections/b/map").json()
    (saved,) = folder.iterdir()  # the file the fit saved
    saved.write_bytes(DAMAGE[damage](saved.read_bytes()))
    with serve(settings) as c:
        for _ in range(2):  # the same answer each time (not a 500 once the damage is known)
            r = c.get("/v1/collections/a/map")
            assert_problem(r, 404, "not-found", "collection 'a'", "fits it again")
        found = damaged(c)
        assert list(found) == ["a"], found
        (line,) = found["a"]
        assert "map.npz" in line or "checksum" in line, line
        assert "fit the map again (POST /v1/collections/a/map)" in line, line
        # the other collection's map is served as before
        assert c.get("/v1/collections/b/map").json() == b_before
        assert_refit_repairs(c, "a", folder)


def test_a_map_damaged_while_served_is_noticed_by_the_next_process(settings: Settings) -> None:
    # The process that fitted it keeps serving what it holds; a restart reads the file.
    with serve(settings) as c:
        create(c, "a", clustered(30, seed=1))
        folder = fitted_folder(c, settings, "a")
        (saved,) = folder.iterdir()
        saved.write_bytes(b"garbage")
        assert c.get("/v1/collections/a/map").status_code == 200
    with serve(settings) as c:
        assert c.get("/v1/collections/a/map").status_code == 404
        assert "a" in damaged(c)


# -- (3) something else in the file's place --------------------------------------------------


@pytest.mark.parametrize("what", ["folders named as the files", "a file named as the folder"])
def test_a_refit_replaces_whatever_is_in_the_files_place(settings: Settings, what: str) -> None:
    with serve(settings) as c:
        create(c, "a", clustered(30, seed=1))
        folder = fitted_folder(c, settings, "a")
    shutil.rmtree(folder)
    if what == "a file named as the folder":
        folder.write_bytes(b"not a folder")
    else:
        for name in ("map.npz", "map.pkl"):  # this version's file and the old one's
            (folder / name / "inside").mkdir(parents=True)
    with serve(settings) as c:
        r = c.get("/v1/collections/a/map")
        assert_problem(r, 404, "not-found", "collection 'a'", "map")
        assert_refit_repairs(c, "a", folder)
        assert c.get("/v1/collections/a/map").status_code == 200


# -- (4) another collection's file -----------------------------------------------------------


def test_another_collections_map_copied_over_is_not_served(settings: Settings) -> None:
    with serve(settings) as c:
        create(c, "a", clustered(30, seed=1))
        create(c, "b", clustered(40, seed=2))
        a_folder = fitted_folder(c, settings, "a")
        b_folder = fitted_folder(c, settings, "b")
        a_view = c.get("/v1/collections/a/map").json()
    for path in a_folder.iterdir():
        shutil.copyfile(path, b_folder / path.name)
    with serve(settings) as c:
        r = c.get("/v1/collections/b/map")
        assert_problem(r, 404, "not-found", "another collection's", "fits it again")
        (line,) = damaged(c)["b"]
        assert "another collection's" in line, line
        assert c.get("/v1/collections/a/map").json() == a_view
        assert_refit_repairs(c, "b", b_folder)
        assert len(c.get("/v1/collections/b/map").json()["ids"]) == 40


# -- (5) placing what was written after the fit, by each method ---------------------------


@pytest.mark.parametrize("method", ["pca", pytest.param("umap", marks=pytest.mark.slow)])
def test_new_items_are_placed_beside_their_twins(settings: Settings, method: str) -> None:
    x = clustered(90, seed=3)
    with serve(settings) as c:
        create(c, "a", x)
        first = fit(c, "a", method=method)
        assert first["method"] == method
        twins = [0, 1, 2]  # one of each centre
        rng = np.random.default_rng(4)
        near = x[twins] + 0.01 * rng.normal(size=(3, DIM)).astype(np.float32)
        add(c, "a", near / np.linalg.norm(near, axis=1, keepdims=True), prefix="new")
    with serve(settings) as c:  # after a restart: placed from the saved arrays alone
        view = c.get("/v1/collections/a/map").json()
    assert view["fitted_seq"] == first["fitted_seq"] < view["seq"]
    assert view["placed"] == 3
    at = {i: n for n, i in enumerate(view["ids"])}
    xy = np.column_stack([view["x"], view["y"]])
    spread = np.ptp(xy, axis=0).max()
    for n, twin in enumerate(twins):
        here, there = xy[at[f"new{n}"]], xy[at[f"v{twin}"]]
        assert np.linalg.norm(here - there) < 0.1 * spread
        assert view["cluster"][at[f"new{n}"]] == view["cluster"][at[f"v{twin}"]]
