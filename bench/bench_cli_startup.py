"""How long CLI commands take from a cold interpreter to exit, on a small local collection.

`--help`, `models` and the in-process commands that read but do not encode (dedup,
reindex) never import torch; a text search in-process does, to encode its query. Each
command runs 5 times in a fresh interpreter; min / median wall time.

    python bench/bench_cli_startup.py
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from results import machine, write_section

COMMANDS = [
    ["--help"],
    ["models"],
    ["dedup", "c"],
    ["reindex", "c"],
    ["search", "c", "a red square"],
]
RUNS = 5


def run(env: dict[str, str], args: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "latentspace.cli", *args], env=env, capture_output=True, check=True
    )
    return time.perf_counter() - started


def main() -> None:
    with tempfile.TemporaryDirectory() as data:
        env = {**os.environ, "LATENTSPACE_DATA_DIR": data, "HF_HUB_OFFLINE": "1"}
        images = Path(data) / "images"
        images.mkdir()
        from latentspace.embedder.models.shapes import generate

        for i, sample in enumerate(generate(20, seed=1)):
            sample.image.save(images / f"{i}.png")
        subprocess.run(
            [sys.executable, "-m", "latentspace.cli", "ingest", "c", str(images)],
            env=env,
            capture_output=True,
            check=True,
        )
        rows = []
        for args in COMMANDS:
            times = [run(env, args) for _ in range(RUNS)]
            rows.append(
                f"| `latentspace {' '.join(args)}` | {min(times):.2f} s | "
                f"{statistics.median(times):.2f} s |"
            )
            print(rows[-1], flush=True)
    body = (
        "## CLI start-up (`bench/bench_cli_startup.py`)\n\n"
        f"{machine()}. Wall time from a fresh interpreter to exit, {RUNS} runs each, on a "
        "local data directory holding 20 tiny-shapes images. Only the last command encodes "
        "(its query text), so only it imports torch.\n\n"
        "| command | min | median |\n|---|---:|---:|\n" + "\n".join(rows)
    )
    write_section("cli-startup", body)


if __name__ == "__main__":
    main()
