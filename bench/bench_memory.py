"""Peak server memory of the worst image request the limits allow.

The attack: images that compress to almost nothing but decode to the largest size allowed
(a solid-colour PNG of ``max_image_pixels`` pixels is ~100 KB), as many as the request may
carry. The server runs in its own process; its peak resident set (``VmHWM``) is read
from /proc after the request, minus what it held before. ``--src`` runs the server from
another checkout (the previous release, say) for a before/after figure.

    python bench/bench_memory.py                      # this checkout
    python bench/bench_memory.py --src /path/to/old/src --label before
"""

from __future__ import annotations

import argparse
import io
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from results import machine, write_section

SERVER = """
import sys, uvicorn
from latentspace.api import create_app
from latentspace.settings import Settings
uvicorn.run(create_app(Settings(data_dir=sys.argv[1], auth="off")), host="127.0.0.1",
            port=int(sys.argv[2]), log_level="warning")
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def memory_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} for {pid}")


def flat_png(side: int, shade: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (side, side), (200, 30, shade)).save(out, format="PNG")
    return out.getvalue()


def run(src: str | None, images: int, side: int) -> dict[str, float]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "2"}
    if src:
        env["PYTHONPATH"] = src
    port = free_port()
    with tempfile.TemporaryDirectory() as data:
        server = subprocess.Popen([sys.executable, "-c", SERVER, data, str(port)], env=env)
        base = f"http://127.0.0.1:{port}"
        try:
            for _ in range(600):
                try:
                    if httpx.get(f"{base}/healthz", timeout=1).is_success:
                        break
                except httpx.TransportError:
                    time.sleep(0.2)
            httpx.post(
                f"{base}/v1/collections", json={"name": "m", "model": "tiny-shapes"}, timeout=120
            )
            pngs = [flat_png(side, i) for i in range(images)]  # distinct bytes, distinct ids
            files = [("files", (f"{i}.png", png, "image/png")) for i, png in enumerate(pngs)]
            before = memory_kib(server.pid, "VmRSS")
            started = time.perf_counter()
            r = httpx.post(f"{base}/v1/collections/m/images", files=files, timeout=600)
            seconds = time.perf_counter() - started
            peak = memory_kib(server.pid, "VmHWM")
            answer = r.json()
            statuses = [i["status"] for i in answer.get("items", answer.get("errors", []))]
            if not statuses:
                raise RuntimeError(f"the request failed: {r.status_code} {r.text[:300]}")
        finally:
            server.terminate()
            server.wait(30)
    return {
        "body_kb": sum(len(p) for p in pngs) / 1024,
        "pixels": side * side * images,
        "before_mb": before / 1024,
        "peak_mb": peak / 1024,
        "seconds": seconds,
        "stored": sum(1 for s in statuses if s in ("created", "updated", "unchanged")),
        "refused": sum(1 for s in statuses if s == "error"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--src", help="run the server from this source folder")
    parser.add_argument("--label", default="this checkout")
    parser.add_argument("--images", type=int, default=12)
    parser.add_argument("--side", type=int, default=6324, help="6324² ≈ the 40 MP default")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    result = run(args.src, args.images, args.side)
    row = (
        f"| {args.label} | {args.images} × {args.side}² PNG ({result['body_kb']:.0f} KB) | "
        f"{result['pixels'] / 1e6:.0f} MP | {result['stored']} / {result['refused']} | "
        f"{result['before_mb']:.0f} MB | {result['peak_mb']:.0f} MB | "
        f"{result['peak_mb'] - result['before_mb']:.0f} MB | {result['seconds']:.1f} s |"
    )
    print(row)
    if not args.no_write:
        path = Path(__file__).resolve().parent / "memory_rows.txt"
        rows = [r for r in (path.read_text().splitlines() if path.exists() else []) if r]
        rows = [r for r in rows if not r.startswith(f"| {args.label} |")] + [row]
        path.write_text("\n".join(rows) + "\n")
        body = (
            "## Peak memory of the worst image request (`bench/bench_memory.py`)\n\n"
            f"{machine()}. One multipart request of solid-colour PNGs, each of the default "
            "`max_image_pixels` (40 MP), to a server in its own process; peak = its VmHWM "
            "after the request, growth = peak − RSS before it.\n\n"
            "| server | request | pixels | stored / refused | RSS before | peak | growth | "
            "time |\n|---|---|---:|---|---:|---:|---:|---:|\n" + "\n".join(rows) + "\n\n"
            "Before, every image of a request was decoded before any was encoded, so memory grew "
            "with the count: ~180 MB per 40 MP image, and a full 64 MiB body of such PNGs "
            "(~500 of them) would have needed ~90 GB. After, images are decoded, encoded and "
            "dropped in groups of at most `LATENTSPACE_ENCODER__DECODE_PIXELS` (64 MP, one "
            "image at least), and one request may decode at most "
            "`LATENTSPACE_LIMITS__MAX_REQUEST_PIXELS` (400 MP; the rest are per-item 413s), so "
            "the growth above is the worst any request within the default limits causes."
        )
        write_section("memory", body)


if __name__ == "__main__":
    main()
