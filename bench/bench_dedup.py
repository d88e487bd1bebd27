"""Duplicate detection on real photos: precision and recall of each tier, and check speed.

    python bench/bench_dedup.py [--originals 20] [--stored 100000] [--skip-speed] [--no-write]
    python bench/bench_dedup.py --data-only      # the local pHash distances alone, no server

Data, offline: photos shipped inside scikit-image (``skimage.data``; those pooch would
download are skipped) and their variants: the same bytes again (``identical``), JPEG quality
60, a 50 % resize, a centre crop to 90 % of each side, pixels turned 90° with an EXIF
Orientation tag (6 or 8) that turns them back, grayscale (colour photos only), a colour shift
(hue +36°, saturation ×1.25; a sepia-like gain on grey photos). Unrelated: the other
scikit-image photos, faces and non-face patches of ``lfw_subset`` (25×25, upscaled 4×),
smooth random colour fields. In-process (``TestClient``, auth off, CPU, ``tiny-shapes``):

(a) ``POST …/duplicates/check``, the originals and half the unrelated images stored, every
    variant and the other unrelated images checked: precision / recall per tier, cumulative
    and per variant kind (a finding is right when it names the variant's original); then a
    pass at the widest Hamming radius for a radius sweep.
(b) ``GET …/duplicates`` at the defaults over everything: pairwise precision and recall of
    the clusters cut at each tier, the largest cluster, the weakest evidence.
(c) check latency with ``--stored`` generated 64×64 images (8×8 random colour grids,
    upscaled) stored: median and p95 for a stored image's JPEG twin and for an unrelated
    image, at the default radius and at ``hamming=10``; TestClient's own cost included.

Writes the "dedup" section of bench/RESULTS.md unless ``--no-write`` or ``--data-only``.
"""

from __future__ import annotations

import argparse
import base64
import io
import itertools
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date
from importlib.metadata import version
from pathlib import Path
from typing import Any

import imagehash
import numpy as np
from fastapi.testclient import TestClient
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from dedup_data import KINDS, Sample, build, decode, encode, smooth_field
from results import machine, write_section

os.environ.setdefault("HF_HUB_OFFLINE", "1")

GOAL_KINDS = ("jpeg60", "resize50", "exif_rot", "gray")
TIERS = ("identical", "same_image", "similar")
CUTS = {"identical": TIERS[:1], "≤ same_image": TIERS[:2], "all tiers": TIERS}
BATCH, FILL_BATCH, BATCH_BYTES, SWEEP_MAX = 64, 256, 16 << 20, 20
Results = list[tuple["Sample", list["Finding"]]]


def phash_table(samples: list[Sample]) -> str:
    """Hamming distances of ``imagehash.phash`` (64 bits), computed here on decoded files;
    and a check that each EXIF-rotated file shows its original once transposed."""
    shown = {s.id: decode(s.data).convert("RGB") for s in samples}
    h = {i: int(str(imagehash.phash(image)), 16) for i, image in shown.items()}
    turned = [(shown[s.id], shown[f"o:{s.group}"]) for s in samples if s.kind == "exif_rot"]
    bad = sum(
        a.size != b.size or np.abs(np.asarray(a, float) - np.asarray(b, float)).mean() > 4
        for a, b in turned
    )
    ids = {k: [s.id for s in samples if s.kind == k] for k in ("original", "unrelated")}
    lines = ["| variant kind | n | min | median | max |", "|---|---:|---:|---:|---:|"]
    for kind in KINDS:
        d = [(h[s.id] ^ h[f"o:{s.group}"]).bit_count() for s in samples if s.kind == kind]
        if d:
            lines.append(f"| {kind} | {len(d)} | {min(d)} | {statistics.median(d):g} | {max(d)} |")
    pairs = {
        "unrelated ↔ unrelated": itertools.combinations(ids["unrelated"], 2),
        "unrelated ↔ original": itertools.product(ids["unrelated"], ids["original"]),
        "original ↔ other original": itertools.combinations(ids["original"], 2),
        "variant ↔ another original": [
            (s.id, o) for s in samples if s.kind in KINDS for o in ids["original"]
        ],
    }
    lines += ["", "| pair | pairs | min | ≤ 10 | ≤ 14 |", "|---|---:|---:|---:|---:|"]
    for label, among in pairs.items():
        d = [(h[a] ^ h[b]).bit_count() for a, b in among if a.split(":")[1] != b.split(":")[1]]
        lines.append(f"| {label} | {len(d):,} | {min(d)} | {sum(x <= 10 for x in d)} | "
                     f"{sum(x <= 14 for x in d)} |")  # fmt: skip
    lines.append(f"\nEXIF-rotated files that do not show their original once transposed: {bad}.")
    return "\n".join(lines)


# -- the API's shapes (adjust here when a field is renamed) ----------------------------------
@dataclass(frozen=True)
class Finding:
    id: str
    tier: str
    cosine: float | None
    hamming: int | None


def parse(body: dict[str, Any]) -> tuple[list[Finding], list[tuple[str, str, list[Finding]]]]:
    """Findings of a check body, or ``(representative, keep, members)`` of a clusters body."""

    def found(f: dict[str, Any]) -> Finding:
        return Finding(f["id"], f["tier"], f.get("cosine"), f.get("hamming"))

    findings = [found(f) for f in body.get("findings", [])]
    clusters = [
        (c["representative"], c.get("keep", ""), [found(m) for m in c["members"]])
        for c in body.get("clusters", [])
    ]
    return findings, clusters


@dataclass
class Api:
    client: TestClient

    def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        r = self.client.post(path, json=body)
        if r.status_code >= 400:
            raise RuntimeError(f"POST {path}: {r.status_code} {r.text[:500]}")
        answer: dict[str, Any] = r.json()
        return answer

    def store(self, name: str, samples: Iterable[tuple[str, bytes]], batch: int = BATCH) -> None:
        """Store ``samples`` in ``name`` (created if new), ``batch`` (and ≤ 16 MiB) a request."""
        if self.client.get(f"/v1/collections/{name}").status_code == 404:
            self.post("/v1/collections", {"name": name, "model": "tiny-shapes"})
        items: list[dict[str, Any]] = []
        size = 0
        for item_id, data in itertools.chain(samples, [("", b"")]):
            if items and (not data or len(items) == batch or size + len(data) > BATCH_BYTES):
                self.post(f"/v1/collections/{name}/items", {"items": items})
                items, size = [], 0
            if data:
                items.append({"id": item_id, "image": base64.b64encode(data).decode()})
                size += len(data)

    def check(self, name: str, data: bytes, **kw: Any) -> dict[str, Any]:
        body = {"image": base64.b64encode(data).decode(), "k": 10, **kw}
        return self.post(f"/v1/collections/{name}/duplicates/check", body)


# -- (a) check ------------------------------------------------------------------------------
def pr(results: Results, keep: Callable[[Finding], bool]) -> str:
    """``precision / recall`` of the findings ``keep`` selects; ``flagged n`` for unrelated."""
    right = wrong = hit = wanted = 0
    for s, findings in results:
        good = sum(f.id == f"o:{s.group}" for f in findings if keep(f))
        right, wrong = right + good, wrong + sum(map(keep, findings)) - good
        if s.kind != "unrelated":
            wanted, hit = wanted + 1, hit + (good > 0)
    if not wanted:
        return f"flagged {sum(any(map(keep, fs)) for _, fs in results)}"
    return (f"{right / (right + wrong):.2f}" if right + wrong else "–") + f" / {hit / wanted:.2f}"


def of_kind(results: Results, kind: str) -> Results:
    every = kind == "all variants"
    return [(s, f) for s, f in results if s.kind == kind or (every and s.kind != "unrelated")]


def check_table(results: Results) -> tuple[str, bool]:
    """The table of (a), and whether the goal is met."""
    columns = {f"{t} only": (lambda f, t=t: f.tier == t) for t in TIERS}
    columns |= {c: (lambda f, c=c: f.tier in CUTS[c]) for c in list(CUTS)[1:]}
    rows = {
        k: {"n": str(len(part))} | {c: pr(part, keep) for c, keep in columns.items()}
        for k in (*KINDS, "all variants", "unrelated")
        if (part := of_kind(results, k))
    }
    lines = ["| checked | n | " + " | ".join(columns) + " |", "|---|" + "---:|" * 6]
    lines += [f"| {r} | " + " | ".join(v.values()) + " |" for r, v in rows.items()]
    cut = [rows[k]["≤ same_image"].split(" / ") for k in GOAL_KINDS if k in rows]
    goal = rows["unrelated"]["≤ same_image"] == "flagged 0"
    return "\n".join(lines), goal and all(p == "1.00" and float(r) >= 0.9 for p, r in cut)


def sweep_table(results: Results) -> str:
    """Identical + same_image as if the radius were r, from a check at the widest radius."""
    lines = ["| radius | P / R all variants | " + " | ".join(f"R {k}" for k in KINDS[1:])]
    lines = [lines[0] + " | unrelated flagged |", "|---:|" + "---:|" * (len(KINDS) + 1)]
    for r in range(2, SWEEP_MAX + 1, 2):

        def keep(f: Finding, r: int = r) -> bool:
            return f.tier == "identical" or (f.hamming is not None and f.hamming <= r)

        cells = [pr(of_kind(results, "all variants"), keep)]
        for kind in KINDS[1:]:
            part = of_kind(results, kind)
            cells.append(pr(part, keep).split(" / ")[1] if part else "–")
        cells.append(pr(of_kind(results, "unrelated"), keep).removeprefix("flagged "))
        lines.append(f"| {r} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


# -- (b) clusters ---------------------------------------------------------------------------
def cluster_report(samples: list[Sample], body: dict[str, Any]) -> str:
    group, kind = {s.id: s.group for s in samples}, {s.id: s.kind for s in samples}
    clusters = parse(body)[1]
    by_group = [[s.id for s in samples if s.group == g] for g in {s.group for s in samples}]
    truth = {frozenset(p) for ids in by_group for p in itertools.combinations(ids, 2)}
    lines = [
        "| cut at | clusters | pairs | pair precision | pair recall | unrelated in clusters | "
        + " | ".join(f"{k} with original" for k in KINDS) + " |",
        "|---|" + "---:|" * (5 + len(KINDS)),
    ]  # fmt: skip
    for cut, tiers in CUTS.items():
        kept = [[rep, *(m.id for m in ms if m.tier in tiers)] for rep, _, ms in clusters]
        kept = [c for c in kept if len(c) > 1]
        pairs = {frozenset(p) for c in kept for p in itertools.combinations(c, 2)}
        good = len(pairs & truth)
        where = {i: n for n, c in enumerate(kept) for i in c}
        together = []
        for k in KINDS:
            ids = [s.id for s in samples if s.kind == k]
            same = sum(i in where and where[i] == where.get(f"o:{group[i]}") for i in ids)
            together.append(f"{same}/{len(ids)}")
        cells = [len(kept), len(pairs), f"{good / len(pairs):.3f}" if pairs else "–"]
        cells += [f"{good / len(truth):.3f}", sum(kind[i] == "unrelated" for i in where)]
        lines.append(f"| {cut} | " + " | ".join(map(str, cells + together)) + " |")
    largest = max((len(ms) for _, _, ms in clusters), default=0)
    notes = [f"Largest cluster: {largest} items."]
    for tier in TIERS:
        at = [(rep, m) for rep, _, ms in clusters for m in ms if m.tier == tier]
        wrong = sum(group[rep] != group[m.id] for rep, m in at)
        line = f"`{tier}` members: {len(at)}, {wrong} not of the representative's original"
        if ham := [(m.hamming, rep, m.id) for rep, m in at if m.hamming is not None]:
            line += "; largest Hamming {} ({} → {})".format(*max(ham))
        if cos := [(m.cosine, rep, m.id) for rep, m in at if m.cosine is not None]:
            line += "; lowest cosine {:.3f} ({} → {})".format(*min(cos))
        notes.append(line + ".")
    led = [(rep, keep) for rep, keep, _ in clusters if rep.startswith("o:")]
    notes.append(
        f"`keep` names the original in {sum(k == r for r, k in led)} of the {len(led)} "
        "clusters an original represents."
    )
    return "\n".join(lines) + "\n\n" + "\n".join(f"- {n}" for n in notes)


# -- (c) speed ------------------------------------------------------------------------------
def grid_image(i: int) -> bytes:
    return encode(smooth_field(np.random.default_rng((11, i)), 8, 64))


def speed(api: Api, stored: int, checks: int) -> str:
    rows, fills, done = [], [], 0
    for target in sorted({min(1_000, stored), stored}):
        started = time.perf_counter()
        api.store("speed", ((f"g{i}", grid_image(i)) for i in range(done, target)), FILL_BATCH)
        api.client.post("/v1/collections/speed/flush")
        fills.append(f"{target - done:,} in {time.perf_counter() - started:.0f} s")
        done = target
        picks = np.random.default_rng(target).integers(0, done, checks).tolist()
        twins = [encode(Image.open(io.BytesIO(grid_image(i))), "JPEG", quality=60) for i in picks]
        strangers = [grid_image(stored + j) for j in range(checks)]
        for label, queries in (("stored twin (JPEG q60)", twins), ("unrelated", strangers)):
            for kw in ({}, {"hamming": 10}):
                for data in queries[:20]:  # warm-up, unrecorded
                    api.check("speed", data, **kw)
                ms, same = [], 0
                for data in queries:
                    t = time.perf_counter()
                    findings = parse(api.check("speed", data, **kw))[0]
                    ms.append((time.perf_counter() - t) * 1000)
                    same += any(f.tier == "same_image" for f in findings)
                cells = [f"{done:,}", label, kw.get("hamming", "default")]
                cells += [f"{statistics.median(ms):.2f}", f"{np.percentile(ms, 95):.2f}"]
                rows.append("| " + " | ".join(map(str, cells)) + f" | {same}/{len(queries)} |")
    return "\n".join([
        f"Fill through `POST …/items` ({FILL_BATCH} a batch, then `flush`): {'; '.join(fills)}.",
        "",
        "| stored | query | hamming | median ms | p95 ms | same_image found |",
        "|---:|---|---|---:|---:|---:|",
        *rows,
    ])  # fmt: skip


# -- main -----------------------------------------------------------------------------------
def api_parts(samples: list[Sample], args: argparse.Namespace) -> list[str]:
    from latentspace.api import create_app
    from latentspace.settings import EncoderSettings, Settings

    def run_checks(**kw: Any) -> tuple[Results, dict[str, Any]]:
        results, body = [], {}
        for s in (s for s in samples if not s.stored and s.kind != "original"):
            body = api.check("photos", s.data, **kw)
            results.append((s, parse(body)[0]))
        return results, body

    parts, tmp = [], tempfile.TemporaryDirectory()
    encoder = EncoderSettings(device="cpu")
    settings = Settings(data_dir=Path(tmp.name), auth="off", encoder=encoder)
    with tmp, TestClient(create_app(settings)) as client:
        api = Api(client)
        api.store("photos", ((s.id, s.data) for s in samples if s.stored))
        results, last = run_checks()
        table, goal = check_table(results)
        parts.append(
            f"### (a) `check` at the defaults (threshold {last.get('threshold')}, hamming "
            f"{last.get('hamming')}), k = 10\n\nP / R: findings naming the variant's original "
            "among all findings at those tiers / checks whose original is found there; unrelated: "
            f"checks with any finding there.\n\n{table}\n\nGoal (identical + "
            "same_image: precision 1.0, recall ≥ 0.9 on jpeg60, resize50, exif_rot and gray; "
            f"no unrelated image flagged): {'met' if goal else '**not met**'}."
        )
        try:
            wide = sweep_table(run_checks(hamming=SWEEP_MAX)[0])
            parts.append(
                f"### (a′) Identical + same_image by radius (one pass at hamming {SWEEP_MAX}, "
                f"each finding's own distance)\n\n{wide}"
            )
        except RuntimeError as e:
            parts.append(f"(a′) radius sweep skipped: {e}")
        api.store("all", ((s.id, s.data) for s in samples))
        r = client.get("/v1/collections/all/duplicates", params={"limit": 10_000})
        body = r.raise_for_status().json()
        parts.append(
            f"### (b) `GET …/duplicates` at the defaults (threshold {body.get('threshold')}, "
            f"hamming {body.get('hamming')}) over all {len(samples)} samples\n\nCut at a "
            "tier: each cluster's representative with its members at that tier or stronger "
            "(tiers are relative to the representative); pairs: every pair within a cut "
            "cluster, against the truth (an original with its variants).\n\n"
            + cluster_report(samples, body)
        )
        if not args.skip_speed:
            timing = speed(api, args.stored, args.checks)
            parts.append(f"### (c) `check` latency, in-process\n\n{timing}")
    return parts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--originals", type=int, default=20)
    parser.add_argument("--stored", type=int, default=100_000, help="stored hashes for (c)")
    parser.add_argument("--checks", type=int, default=200, help="timed checks per row of (c)")
    parser.add_argument("--skip-speed", action="store_true")
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--data-only", action="store_true", help="pHash table only, no API")
    args = parser.parse_args()
    began = time.perf_counter()
    samples, names, missing = build(args.originals)
    stored = sum(s.kind == "unrelated" and s.stored for s in samples)
    count = {k: sum(s.kind == k for s in samples) for k in ("original", *KINDS, "unrelated")}
    packages = ("latentspace", "scikit-image", "imagehash", "pillow")
    intro = [
        f"`python bench/bench_dedup.py` on {date.today()}: {machine()}; "
        + ", ".join(f"{p} {version(p)}" for p in packages) + ".",
        "",
        f"Originals ({len(names)}, `skimage.data`): {', '.join(names)}"
        + (f" (not available offline: {', '.join(missing)})." if missing else "."),
        "Samples: " + ", ".join(f"{k} {n}" for k, n in count.items()) + " (unrelated: the "
        "other scikit-image photos, lfw_subset faces and non-face patches, smooth random "
        f"colour fields; {stored} stored).",
    ]  # fmt: skip
    parts = [
        "\n".join(intro),
        "### pHash Hamming distances (64-bit `imagehash.phash`, computed here, not by the "
        "server)\n\n" + phash_table(samples),
    ]
    if not args.data_only:
        parts += api_parts(samples, args)
    parts.append(f"Whole run: {(time.perf_counter() - began) / 60:.1f} min.")
    text = "\n\n".join(parts)
    print(text)
    if not (args.no_write or args.data_only):
        title = "## Duplicate detection: tiers on real photos (`bench/bench_dedup.py`)\n\n"
        write_section("dedup", title + text)


if __name__ == "__main__":
    main()
