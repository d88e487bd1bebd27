"""Frames per second of the page's WebGL map while panning, in headless Chromium.

    python bench/bench_map_fps.py [--n 100000 10000] [--seconds 5] [--quick]

For each ``--n``: loads that many 16-d vectors (40 Gaussian clusters) into a fresh data
directory in-process, starts ``latentspace serve`` on loopback, fits the map over the API
(``POST …/map`` with ``method: pca``, then waits for the job), opens the page in Debian's
Chromium (``/usr/bin/chromium``, headless, driven by Playwright), picks the Map tab, and pans:
every animation frame moves the view and redraws all points, for ``--seconds``. FPS = frames
drawn / seconds. Chromium here has no GPU: WebGL runs on SwiftShader, Chromium's software
renderer, on the same CPU cores, so these are floor figures. Writes the "map-fps" section of
bench/RESULTS.md; ``--quick`` (2,000 points, 1 s) only prints.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import httpx
import numpy as np

from bench_http import code_state

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run"]


def load(data_dir: Path, n: int) -> None:
    from latentspace.service import collections, items, lifecycle
    from latentspace.settings import Settings

    rng = np.random.default_rng(0)
    centres = rng.normal(size=(40, 16))
    x = centres[rng.integers(0, 40, n)] + 0.2 * rng.normal(size=(n, 16))
    ctx = lifecycle.start(Settings(data_dir=data_dir))
    try:
        collections.create(ctx, "map", dim=16)
        for lo in range(0, n, 1000):
            rows = x[lo : lo + 1000].astype(np.float32)
            ids = [f"p{i}" for i in range(lo, lo + rows.shape[0])]
            items.ingest_vectors(ctx, "map", rows, ids=ids)
    finally:
        lifecycle.stop(ctx)


def fps(n: int, seconds: float) -> tuple[float, float]:
    """(fit seconds, frames per second) for a map of n points."""
    from playwright.sync_api import sync_playwright

    tmp = Path(tempfile.mkdtemp(prefix="bench-map-fps-"))
    try:
        load(tmp, n)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        env = {**os.environ, "LATENTSPACE_DATA_DIR": str(tmp), "HF_HUB_OFFLINE": "1"}
        cmd = [sys.executable, "-m", "latentspace.cli", "serve", "--port", str(port)]
        server = subprocess.Popen([*cmd, "--log-level", "warning"], env=env)
        url = f"http://127.0.0.1:{port}"
        try:
            with httpx.Client(base_url=url, timeout=600) as http:
                deadline = time.monotonic() + 300
                while True:
                    try:
                        if http.get("/readyz").status_code == 200:
                            break
                    except httpx.TransportError:
                        pass
                    assert time.monotonic() < deadline, "the server did not start"
                    time.sleep(0.3)
                started = time.perf_counter()
                job = http.post("/v1/collections/map/map", json={"method": "pca"}).json()
                while job["state"] in ("queued", "running"):
                    time.sleep(0.5)
                    job = http.get(f"/v1/jobs/{job['id']}").json()
                assert job["state"] == "done", job
                fit = time.perf_counter() - started
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
                page = browser.new_page(viewport={"width": 1280, "height": 860})
                page.goto(url)
                page.wait_for_selector("body[data-ready=true]")
                page.get_by_test_id("tab-map").click()
                page.wait_for_function(
                    f"() => window.latentspaceMap.count === {n}", timeout=300_000
                )
                rate = page.evaluate(
                    """(seconds) => new Promise((done) => {
                        const m = window.latentspaceMap;
                        const start = performance.now();
                        const frames0 = m.frames;
                        const step = (now) => {
                            m.view.cx = 0.5 + 0.2 * Math.sin((now - start) / 500);
                            m.redraw();
                            if (now - start < seconds * 1000) requestAnimationFrame(step);
                            else done((m.frames - frames0) / ((now - start) / 1000));
                        };
                        requestAnimationFrame(step);
                    })""",
                    seconds,
                )
                browser.close()
        finally:
            server.terminate()
            server.wait(60)
        return fit, float(rate)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, nargs="+", default=[100_000, 10_000])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.n, args.seconds = [2000], 1.0
    from results import write_section

    started = time.perf_counter()
    rows = []
    for n in args.n:
        fit, rate = fps(n, args.seconds)
        rows.append((n, fit, rate))
        print(f"  {n:>7,} points: fit {fit:5.1f} s, {rate:5.1f} frames/s", flush=True)
    minutes = (time.perf_counter() - started) / 60
    lines = [
        "## Map on the page: frames per second while panning (`bench/bench_map_fps.py`)",
        "",
        f"Run {date.today().isoformat()} on a {os.cpu_count()}-core CPU, no GPU: headless "
        "Chromium (Debian's, Playwright) draws WebGL with SwiftShader, its software renderer, "
        f"on the same cores. Code {code_state()}; whole run {minutes:.1f} min. Reproduce: "
        "`.venv/bin/python bench/bench_map_fps.py`.",
        "",
        f"Each animation frame moves the view and redraws every point, for {args.seconds:g} s "
        "(1280 × 860 viewport); the map is fitted over the API with `method: pca` first.",
        "",
        "| points | map fit s | frames/s |",
        "|---:|---:|---:|",
    ]
    lines += [f"| {n:,} | {fit:.1f} | {rate:.1f} |" for n, fit, rate in rows]
    body = "\n".join(lines) + "\n"
    print(f"\n{body}")
    if args.quick:
        print("--quick: bench/RESULTS.md left as it was")
    else:
        write_section("map-fps", body)
        print("wrote the 'map-fps' section of bench/RESULTS.md")


if __name__ == "__main__":
    main()
