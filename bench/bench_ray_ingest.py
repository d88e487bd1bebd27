"""Batch embedding on Ray Data (`ingest --ray`) next to the local `ingest`, same images.

    python bench/bench_ray_ingest.py [--images 3000] [--actors 1 2] [--quick]

Draws ``--images`` tiny-shapes PNGs (224 × 224) into a temporary folder, then times, each into
a fresh data directory and collection: ``latentspace ingest`` (in-process: threads read the
files, the server code decodes and encodes in batches of 64) and ``latentspace ingest --ray``
with each ``--actors`` count (one CPU per actor; Ray Data reads and hashes the files, the
actors decode and encode, the command writes to SQL and builds the index once). Each command
runs as its own process, inside a loopback-only network namespace (``unshare -n``, root), as
the Ray tests do; the wall time includes the process start and, for Ray, starting the local
cluster, which is also timed alone (``ray.init`` + ``ray.shutdown``). Writes the "ray-ingest"
section of bench/RESULTS.md; ``--quick`` (300 images) only prints.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np

from bench_http import code_state


def draw(folder: Path, n: int) -> None:
    from latentspace.embedder.models.shapes import COLOURS, SHAPES, draw_shape

    colours, shapes = sorted(COLOURS), sorted(SHAPES)
    folder.mkdir(parents=True)
    for i in range(n):
        colour, shape = colours[i % len(colours)], shapes[(i // len(colours)) % len(shapes)]
        image = draw_shape(colour, shape, np.random.default_rng(i))
        buffer = io.BytesIO()
        image.resize((224, 224)).save(buffer, format="PNG")
        (folder / f"{i:06d}.png").write_bytes(buffer.getvalue())


def netns(command: list[str], env: dict[str, str]) -> tuple[float, str]:
    """Wall seconds of ``command`` in a loopback-only network namespace, and its stdout."""
    script = "ip link set lo up && exec " + shlex.join(command)
    started = time.perf_counter()
    done = subprocess.run(
        ["unshare", "-n", "sh", "-c", script], env=env, capture_output=True, text=True, check=False
    )
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"{command} failed:\n{done.stderr[-3000:]}")
    return seconds, done.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=3000)
    parser.add_argument("--actors", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.images = 300
    from results import write_section

    started = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix="bench-ray-ingest-"))
    rows = []
    try:
        draw(tmp / "images", args.images)
        base = {**os.environ, "HF_HUB_OFFLINE": "1", "RAY_USAGE_STATS_ENABLED": "0"}
        base["LATENTSPACE_ENCODER__DEVICE"] = "cpu"
        cli = [sys.executable, "-m", "latentspace.cli", "ingest", "bench", str(tmp / "images")]
        init = (
            "import ray,os; ray.init(address='local', num_cpus=os.cpu_count(), "
            "include_dashboard=False); ray.shutdown()"
        )
        ray_start, _ = netns([sys.executable, "-c", init], base)
        runs: list[tuple[str, list[str]]] = [("local `ingest`", [*cli, "--json"])]
        runs += [
            (f"`ingest --ray --actors {n}`", [*cli, "--json", "--ray", "--actors", str(n)])
            for n in args.actors
        ]
        for label, command in runs:
            data = tmp / f"data-{len(rows)}"
            seconds, out = netns(command, {**base, "LATENTSPACE_DATA_DIR": str(data)})
            summary = json.loads(out.strip().splitlines()[-1])
            stored = summary["created"]
            assert stored == args.images, summary
            rows.append((label, seconds, stored))
            print(f"  {label:<28} {seconds:6.1f} s  {stored / seconds:7.0f} images/s", flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    minutes = (time.perf_counter() - started) / 60
    local = rows[0][1]
    lines = [
        "## Batch embedding on Ray Data (`bench/bench_ray_ingest.py`)",
        "",
        f"Run {date.today().isoformat()} on a {os.cpu_count()}-core CPU (no GPU), code "
        f"{code_state()}; whole run {minutes:.1f} min. Reproduce (as root): "
        "`.venv/bin/python bench/bench_ray_ingest.py`.",
        "",
        f"{args.images:,} tiny-shapes PNGs (224 × 224), each command into a fresh data "
        "directory, as its own process in a loopback-only network namespace; wall time from "
        "process start to exit (Python start-up, encoder load, Ray's local cluster where used, "
        f"the SQL writes and the index build). Starting and stopping Ray's local cluster alone "
        f"took {ray_start:.1f} s.",
        "",
        "| command | wall s | images/s | vs local |",
        "|---|---:|---:|---:|",
    ]
    for label, seconds, stored in rows:
        lines.append(
            f"| {label} | {seconds:.1f} | {stored / seconds:,.0f} | {local / seconds:.2f}× |"
        )
    best = min(rows[1:], key=lambda r: r[1], default=None)
    if best is not None:
        lines += [
            "",
            f"- On this one machine Ray's best run took {best[1] - local:.1f} s longer than the "
            f"local command, {ray_start:.1f} s of it starting the local cluster; the rest is "
            "Ray's worker processes, each actor loading its own encoder, and moving the files "
            "through the object store, on the same cores. Ray pays off with more machines or "
            "GPUs than one process can use, which this run does not have.",
        ]
    body = "\n".join(lines) + "\n"
    print(f"\n{body}")
    if args.quick:
        print("--quick: bench/RESULTS.md left as it was")
    else:
        write_section("ray-ingest", body)
        print("wrote the 'ray-ingest' section of bench/RESULTS.md")


if __name__ == "__main__":
    main()
