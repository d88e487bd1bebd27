"""The web page in headless Chromium (Playwright), against a live server on loopback.

Each step of ``test_page`` saves a screenshot into ``$LATENTSPACE_SCREENSHOTS`` when set (the
README's pictures), else into the test's temp dir. Needs Debian's ``chromium`` at
/usr/bin/chromium and the ``playwright`` package (no browser download: ``playwright install``
is never run).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest
from PIL import ImageEnhance
from tests.fixtures import ADMIN_KEY, READ_KEY, image_bytes, make_settings, serve

from latentspace.embedder.models.shapes import generate

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Locator, Page

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TIMEOUT_MS = 20_000  # generous: CI may share the CPU

# CI installs both and sets LATENTSPACE_REQUIRE_BROWSER=1, so there a missing browser fails.
REQUIRED = os.environ.get("LATENTSPACE_REQUIRE_BROWSER") == "1"
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not CHROMIUM.exists() and not REQUIRED,
        reason="needs Debian's chromium at /usr/bin/chromium",
    ),
]
if REQUIRED:
    import playwright.sync_api as sync_api
else:
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="needs the playwright package (pip install playwright)"
    )
expect = sync_api.expect

# 160 shapes s0..s159 (pair i % 32 of 8 colours x 4 shapes: s0 is a red circle, s1 a red
# square, 5 of each), plus an exact copy of s21 (an orange square) under another id and a
# near copy of s42 (a blue triangle, 3 % brighter: cosine ≈ 0.9999).
SAMPLES = generate(160, seed=5)
PNGS = {f"s{i}": image_bytes(s.image, "PNG") for i, s in enumerate(SAMPLES)}
LABELS = {f"s{i}": (s.colour, s.shape) for i, s in enumerate(SAMPLES)}
ORIGINAL, COPY = "s21", "s21-copy"
PNGS[COPY], LABELS[COPY] = PNGS[ORIGINAL], LABELS[ORIGINAL]
NEAR_ORIGINAL, NEAR = "s42", "s42-brighter"
PNGS[NEAR] = image_bytes(ImageEnhance.Brightness(SAMPLES[42].image).enhance(1.03), "PNG")
LABELS[NEAR] = LABELS[NEAR_ORIGINAL]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    yield page
    context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("LATENTSPACE_SCREENSHOTS") or tmp_path / "screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    """A live server (no API keys: loopback needs none) with "shapes" loaded and an empty
    "empty" collection, so that picking the collection matters."""
    with (
        serve(make_settings(tmp_path / "data", api_keys="")) as url,
        httpx.Client(base_url=url, timeout=120) as http,
    ):
        for name in ("shapes", "empty"):
            r = http.post("/v1/collections", json={"name": name, "model": "tiny-shapes"})
            assert r.status_code == 201, r.text
        ids = list(PNGS)
        r = http.post(
            "/v1/collections/shapes/images",
            files=[("files", (f"{i}.png", PNGS[i], "image/png")) for i in ids],
            data={
                "ids": json.dumps(ids),
                "metadata": json.dumps(
                    [dict(zip(("colour", "shape"), LABELS[i], strict=True)) for i in ids]
                ),
            },
        )
        assert r.status_code == 200, r.text
        yield url


def result_ids(page: Page) -> list[str]:
    return [c.get_attribute("data-id") or "" for c in page.get_by_test_id("result").all()]


def generation(locator: Locator) -> str:
    return locator.get_attribute("data-generation") or "0"


def until_rendered(locator: Locator, before: str) -> None:
    """Wait for the page to finish the search it started (its render counter moved on)."""
    expect(locator).not_to_have_attribute("data-generation", before, timeout=TIMEOUT_MS)
    expect(locator).to_have_attribute("aria-busy", "false")


def snap(page: Page, path: Path) -> None:
    """A full-page screenshot once every visible image has loaded."""
    page.wait_for_function(
        "() => [...document.images].filter((i) => i.offsetParent !== null)"
        ".every((i) => i.complete && i.naturalWidth > 0)",
        timeout=TIMEOUT_MS,
    )
    page.screenshot(path=path, full_page=True)


def test_page(server: str, page: Page, shots: Path, tmp_path: Path) -> None:
    console_errors: list[str] = []  # e.g. a missing static file or a failed request
    page.on("console", lambda m: console_errors.append(m.text) if m.type == "error" else None)
    results = page.get_by_test_id("results")
    page.goto(server)
    expect(page.locator("body")).to_have_attribute("data-ready", "true")
    expect(page.get_by_test_id("error")).to_be_hidden()

    # 1. pick the collection, search with words: red squares first
    page.get_by_test_id("collection-select").select_option("shapes")
    expect(page.get_by_test_id("collection-info")).to_contain_text(f"{len(PNGS)} items")
    page.get_by_test_id("search-input").fill("a red square")
    before = generation(results)
    page.get_by_test_id("search-button").click()
    until_rendered(results, before)
    ids = result_ids(page)
    assert len(ids) == 12
    assert [LABELS[i] for i in ids[:4]] == [("red", "square")] * 4, ids
    expect(page.get_by_test_id("status")).to_contain_text("a red square")
    card = page.locator(f'[data-testid="result"][data-id="{ids[0]}"]')
    expect(card.get_by_role("img", name=f"item {ids[0]}")).to_be_visible()
    snap(page, shots / "1-search.png")

    # 2. upload a stored image: the duplicates panel names it (and its copy) as identical,
    #    and the results are that item and its look-alikes
    upload = tmp_path / "orange-square.png"
    upload.write_bytes(PNGS[ORIGINAL])
    before = generation(results)
    page.get_by_test_id("image-input").set_input_files(upload)
    until_rendered(results, before)
    panel = page.get_by_test_id("duplicates-panel")
    expect(panel).to_have_attribute("data-state", "ready")
    expect(panel).to_contain_text("Already here")
    exact = panel.locator('[data-testid="duplicate"][data-kind="identical"]')
    assert sorted(d.get_attribute("data-id") or "" for d in exact.all()) == [ORIGINAL, COPY]
    ids = result_ids(page)
    assert set(ids[:2]) == {ORIGINAL, COPY}, ids
    assert sum(LABELS[i] == LABELS[ORIGINAL] for i in ids[:5]) >= 4, ids
    snap(page, shots / "2-duplicates.png")

    # 3. "more like this" on the uploaded item: it leaves the results; look-alikes lead
    before = generation(results)
    card = page.locator(f'[data-testid="result"][data-id="{ORIGINAL}"]')
    card.get_by_test_id("more-like-this").click()
    until_rendered(results, before)
    expect(page.get_by_test_id("status")).to_contain_text(f"items like {ORIGINAL}")
    ids = result_ids(page)
    assert ORIGINAL not in ids
    assert sum(LABELS[i] == LABELS[ORIGINAL] for i in ids[:4]) >= 3, ids
    snap(page, shots / "3-more-like-this.png")

    # 4. the query builder: a red circle + "blue" − "red" finds a blue circle
    red_circle = "s0"
    assert LABELS[red_circle] == ("red", "circle")
    builder = page.get_by_test_id("terms-builder")
    builder.get_by_test_id("add-term").click()
    builder.get_by_test_id("add-term").click()
    rows = builder.get_by_test_id("term-row")
    expect(rows).to_have_count(3)
    for row, (kind, value, weight) in zip(
        rows.all(),
        [("item", red_circle, "1"), ("text", "blue", "1"), ("text", "red", "-1")],
        strict=True,
    ):
        row.get_by_test_id("term-kind").select_option(kind)
        row.get_by_test_id("term-value").fill(value)
        row.get_by_test_id("term-weight").fill(weight)
    expect(rows.nth(2)).to_have_class("term negative")
    before = generation(results)
    builder.get_by_test_id("run-terms").click()
    until_rendered(results, before)
    ids = result_ids(page)
    assert LABELS[ids[0]] == ("blue", "circle"), [LABELS[i] for i in ids]
    assert red_circle not in ids
    snap(page, shots / "4-terms.png")

    # 5. the duplicates view: clusters side by side, the stored copy among them, each
    #    member's evidence against its cluster's representative, the keep suggestion marked
    clusters = page.get_by_test_id("clusters")
    page.get_by_test_id("threshold-input").fill("0.999")
    page.get_by_test_id("hamming-input").fill("1")  # tiny flat shapes: pHash is coarse
    before = generation(clusters)
    page.get_by_test_id("find-duplicates").click()
    until_rendered(clusters, before)
    expect(clusters).to_be_visible()
    expect(results).to_be_hidden()
    exact_cluster = clusters.locator('[data-testid="cluster"][data-kind="identical"]')
    expect(exact_cluster).to_have_count(1)
    members = exact_cluster.get_by_test_id("duplicate")
    assert sorted(m.get_attribute("data-id") or "" for m in members.all()) == [ORIGINAL, COPY]
    expect(exact_cluster.locator('[data-keep="true"]')).to_have_attribute("data-id", ORIGINAL)
    near_cluster = clusters.locator('[data-testid="cluster"][data-kind="same_image"]')
    expect(near_cluster).to_have_count(1)
    members = near_cluster.get_by_test_id("duplicate")
    assert sorted(m.get_attribute("data-id") or "" for m in members.all()) == [NEAR_ORIGINAL, NEAR]
    brighter = near_cluster.locator(f'[data-testid="duplicate"][data-id="{NEAR}"]')
    expect(brighter).to_contain_text(re.compile(r"same image · 0 bits · cos 0\.99"))
    exact_box, near_box = exact_cluster.bounding_box(), near_cluster.bounding_box()
    assert exact_box is not None
    assert near_box is not None
    assert exact_box["y"] == near_box["y"], "the clusters are side by side"
    expect(page.get_by_test_id("clusters-status")).to_contain_text("cosine ≥ 0.999")
    expect(page.get_by_test_id("error")).to_be_hidden()
    snap(page, shots / "5-clusters.png")

    # 6. resolve the identical cluster: the copy goes to the trash; undo brings it back
    exact_cluster.get_by_test_id("resolve").click()
    expect(exact_cluster.get_by_test_id("resolved")).to_contain_text(f"Kept {ORIGINAL}")
    with httpx.Client(base_url=server) as http:
        assert http.get(f"/v1/collections/shapes/items/{COPY}").status_code == 404
        trash = http.get("/v1/collections/shapes/trash").json()["items"]
        assert [t["id"] for t in trash] == [COPY]
        exact_cluster.get_by_test_id("undo").click()
        expect(exact_cluster.get_by_test_id("restored")).to_contain_text(COPY)
        assert http.get(f"/v1/collections/shapes/items/{COPY}").status_code == 200
    assert not console_errors


def test_api_key_field(tmp_path: Path, page: Page) -> None:
    """With keys configured, the page shows the 401's detail until a key is saved; the key
    is kept in localStorage and sent on every request."""
    with serve(make_settings(tmp_path)) as url:
        r = httpx.post(
            f"{url}/v1/collections",
            json={"name": "raw", "dim": 4},
            headers={"Authorization": f"Bearer {ADMIN_KEY}"},
            timeout=60,
        )
        assert r.status_code == 201, r.text
        page.goto(url)
        error = page.get_by_test_id("error")
        expect(error).to_contain_text("missing API key")
        page.get_by_test_id("api-key").fill(READ_KEY)
        page.get_by_test_id("api-key").press("Enter")
        expect(error).to_be_hidden()
        expect(page.get_by_test_id("collection-select")).to_have_value("raw")
        page.reload()
        expect(page.get_by_test_id("collection-info")).to_contain_text("0 items")
        expect(error).to_be_hidden()
        page.get_by_test_id("api-key").fill("wrong")
        page.get_by_test_id("api-key").press("Enter")
        expect(error).to_contain_text("invalid API key")


LONG_ID = "holiday-2024:a-rather-long-folder-name:IMG_20240817_153012_HDR_edited.png"
LONG_PATH = "/home/someone/Pictures/holiday-2024/a-rather-long-folder-name/IMG_20240817.png"


def _lines(page: Page, selector: str) -> float:
    """The most lines any element matching ``selector`` takes."""
    return float(
        page.evaluate(
            """(sel) => Math.max(...[...document.querySelectorAll(sel)].map((e) =>
                 e.getBoundingClientRect().height / parseFloat(getComputedStyle(e).lineHeight)))""",
            selector,
        )
    )


def test_cards_phone_layout_and_a_bad_upload(
    server: str, browser: Browser, shots: Path, tmp_path: Path
) -> None:
    red_square = next(i for i, label in LABELS.items() if label == ("red", "square"))
    r = httpx.post(
        f"{server}/v1/collections/shapes/images",
        files=[("files", ("x.png", PNGS[red_square], "image/png"))],
        data={
            "ids": json.dumps([LONG_ID]),
            "metadata": json.dumps({"path": LONG_PATH, "colour": "red", "shape": "square"}),
        },
        timeout=60,
    )
    assert r.status_code == 200, r.text
    context = browser.new_context(viewport={"width": 390, "height": 844})  # a phone
    context.set_default_timeout(TIMEOUT_MS)
    try:
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        results = page.get_by_test_id("results")
        page.goto(server)
        expect(page.locator("body")).to_have_attribute("data-ready", "true")
        page.get_by_test_id("collection-select").select_option("shapes")
        page.get_by_test_id("k-input").fill("40")
        page.get_by_test_id("search-input").fill("a red square")
        before = generation(results)
        page.get_by_test_id("search-button").click()
        until_rendered(results, before)
        assert LONG_ID in result_ids(page)

        # the results come right after the search box, before the other panels
        results_box = results.bounding_box()
        drop_box = page.get_by_test_id("dropzone").bounding_box()
        assert results_box is not None
        assert drop_box is not None
        assert results_box["y"] < drop_box["y"]
        assert results_box["y"] < 844, "the first results are on the first screen"
        # a card's id and metadata take one line each, however long
        assert _lines(page, '[data-testid="result"] .id') < 1.5
        assert _lines(page, '[data-testid="result"] .meta') < 1.5
        card = page.locator(f'[data-testid="result"][data-id="{LONG_ID}"]')
        expect(card.locator(".meta")).to_have_attribute("title", re.compile(re.escape(LONG_PATH)))
        snap(page, shots / "6-phone.png")

        # a file that is no image: a plain message, no broken preview, no stale results
        bad = tmp_path / "notes.png"
        bad.write_bytes(b"hello, I am not a picture")
        before = generation(results)
        page.get_by_test_id("image-input").set_input_files(bad)
        until_rendered(results, before)
        error = page.get_by_test_id("error")
        expect(error).to_contain_text("“notes.png”: not a supported image")
        assert "term" not in (error.text_content() or "")
        expect(page.get_by_test_id("result")).to_have_count(0)
        expect(page.locator("#preview")).to_be_hidden()
        panel = page.get_by_test_id("duplicates-panel")
        expect(panel).to_have_attribute("data-state", "error")
        expect(panel).to_contain_text("“notes.png”: not a supported image")
        assert not errors, errors
    finally:
        context.close()


def open_map(page: Page, server: str) -> None:
    """The page on the "shapes" collection, its Map tab shown."""
    page.goto(server)
    expect(page.locator("body")).to_have_attribute("data-ready", "true")
    page.get_by_test_id("collection-select").select_option("shapes")
    page.get_by_test_id("tab-map").click()


def test_map_view(server: str, page: Page, shots: Path) -> None:
    open_map(page, server)
    status = page.get_by_test_id("map-status")
    expect(status).to_contain_text("No map of this collection yet")
    page.get_by_test_id("map-compute").click()
    expect(status).to_contain_text(re.compile(r"162 items in \d+ clusters"), timeout=120_000)
    assert page.evaluate("() => window.latentspaceMap.count") == len(PNGS)
    # the WebGL canvas really has points on it (its pixels are not all white)
    coloured = page.evaluate(
        """() => {
        const src = document.getElementById("map-canvas");
        const c = Object.assign(document.createElement("canvas"),
                                {width: src.width, height: src.height});
        const g = c.getContext("2d");
        g.drawImage(src, 0, 0);
        const d = g.getImageData(0, 0, c.width, c.height).data;
        let n = 0;
        for (let i = 0; i < d.length; i += 4) if (d[i] + d[i + 1] + d[i + 2] < 600) n++;
        return n;
    }"""
    )
    assert coloured > 500, coloured
    # hovering a point shows that item, with its thumbnail
    target = page.evaluate("() => window.latentspaceMap.ids.indexOf('s0')")
    at = page.evaluate(f"() => window.latentspaceMap.pointAt({target})")
    page.mouse.move(at["x"], at["y"])
    tip = page.get_by_test_id("map-tip")
    expect(tip).to_be_visible()
    hovered = tip.get_attribute("data-id") or ""
    assert hovered in PNGS
    expect(tip.locator("img")).to_have_attribute("src", re.compile("^blob:"))
    snap(page, shots / "map.png")
    # a click opens the item into the query builder
    page.mouse.click(at["x"], at["y"])
    expect(page.get_by_test_id("map-picked")).to_contain_text(hovered)
    expect(page.get_by_test_id("term-value").first).to_have_value(hovered)
    # drag pans, the wheel zooms
    view = page.evaluate("() => ({...window.latentspaceMap.view})")
    page.mouse.move(at["x"] + 40, at["y"] + 40)
    page.mouse.down()
    page.mouse.move(at["x"] + 140, at["y"] + 90, steps=5)
    page.mouse.up()
    page.mouse.wheel(0, -400)
    moved = page.evaluate("() => ({...window.latentspaceMap.view})")
    assert moved["cx"] != view["cx"]
    assert moved["zoom"] > view["zoom"]
    # a search's results are drawn on the map: the red circles
    page.get_by_test_id("search-input").fill("a red circle")
    before = generation(page.get_by_test_id("results"))
    page.get_by_test_id("search-button").click()
    until_rendered(page.get_by_test_id("results"), before)
    found = result_ids(page)
    page.get_by_test_id("tab-map").click()
    marked = page.evaluate(
        "() => window.latentspaceMap.highlight.map((i) => window.latentspaceMap.ids[i])"
    )
    assert marked == found
    assert all(LABELS[i] == ("red", "circle") for i in marked[:5])


def test_map_lasso_keeps_searches_to_the_items_inside(server: str, page: Page) -> None:
    open_map(page, server)
    page.get_by_test_id("map-compute").click()
    expect(page.get_by_test_id("map-status")).to_contain_text("items in", timeout=120_000)
    box = page.get_by_test_id("map-canvas").bounding_box()
    assert box is not None
    # shift-drag a rectangle over the canvas's left half
    left, top = box["x"] + 5, box["y"] + 5
    right, bottom = box["x"] + box["width"] / 2, box["y"] + box["height"] - 5
    page.keyboard.down("Shift")
    page.mouse.move(left, top)
    page.mouse.down()
    for x, y in ((right, top), (right, bottom), (left, bottom), (left, top + 1)):
        page.mouse.move(x, y, steps=4)
    page.mouse.up()
    page.keyboard.up("Shift")
    inside = page.evaluate(
        f"""() => {{
        const m = window.latentspaceMap;
        return m.ids.filter((_, i) => {{
            const p = m.pointAt(i);
            return p.x > {left} && p.x < {right} && p.y > {top} && p.y < {bottom};
        }});
    }}"""
    )
    selected = page.evaluate("() => window.latentspaceMap.selection")
    assert 0 < len(selected) < len(PNGS)
    assert sorted(selected) == sorted(inside)
    expect(page.get_by_test_id("map-selection")).to_contain_text(f"Lasso: {len(selected)} item")
    # a search now finds only lassoed items
    page.get_by_test_id("search-input").fill("a blue square")
    before = generation(page.get_by_test_id("results"))
    page.get_by_test_id("search-button").click()
    until_rendered(page.get_by_test_id("results"), before)
    found = result_ids(page)
    assert found
    assert set(found) <= set(selected)
    # cleared, searches range over everything again
    page.get_by_test_id("tab-map").click()
    page.get_by_test_id("map-clear-lasso").click()
    expect(page.get_by_test_id("map-selection")).to_be_hidden()
    assert page.evaluate("() => window.latentspaceMap.selection.length") == 0


def test_map_draws_a_path_walk(server: str, page: Page) -> None:
    open_map(page, server)
    page.get_by_test_id("map-compute").click()
    expect(page.get_by_test_id("map-status")).to_contain_text("items in", timeout=120_000)
    page.get_by_test_id("walk-from").fill("item:s0")
    page.get_by_test_id("walk-to").fill("a blue square")
    page.get_by_test_id("walk-steps").fill("6")
    page.get_by_test_id("walk-button").click()
    expect(page.get_by_test_id("map-picked")).to_contain_text("Walk: ")
    drawn = page.evaluate("() => window.latentspaceMap.path")
    body = {"from": {"item": "s0"}, "to": {"text": "a blue square"}, "steps": 6}
    answer = httpx.post(f"{server}/v1/collections/shapes/path", json=body, timeout=60).json()
    assert drawn == [s["item"]["id"] for s in answer["steps"] if s["item"]]
    assert len(drawn) >= 2
