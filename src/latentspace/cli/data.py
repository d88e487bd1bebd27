"""The CLI data commands: ingest, search, reindex, demo (local data dir or --url)."""

from __future__ import annotations

import base64
import glob
import hashlib
import io
import itertools
import json
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table
from rich.text import Text

from latentspace.cli.server import serve
from latentspace.client import ApiClient, ClientError, open_client
from latentspace.limits import id_from_path
from latentspace.settings import Settings

__all__ = [
    "IMAGE_SUFFIXES",
    "JsonOpt",
    "KeyOpt",
    "UrlOpt",
    "demo",
    "fail",
    "find_images",
    "ingest",
    "reindex",
    "search",
]

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff"})

UrlOpt = Annotated[
    str | None, typer.Option("--url", help="A server's base URL (default: the local data dir).")
]
KeyOpt = Annotated[
    str | None, typer.Option("--api-key", envvar="LATENTSPACE_API_KEY", help="Bearer key.")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def fail(message: str) -> typer.Exit:
    """Print an error; the exit to raise."""
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    return typer.Exit(code=2)


def find_images(paths: Sequence[str]) -> dict[Path, str | None]:
    """Image files under ``paths`` (folders recursively, globs, or files, sorted), each with
    its id: its path under the folder named (a glob's fixed part; alone: its name), folders
    written ``:``; None if no usable id (then the content's sha256, as the server does)."""
    found: dict[Path, str | None] = {}
    for raw in paths:
        matches = [Path(p) for p in sorted(glob.glob(raw, recursive=True))] or [Path(raw)]
        root = _fixed_part(raw) if glob.has_magic(raw) else None
        for path in matches:
            if path.is_dir():
                for f in sorted(path.rglob("*")):
                    if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES:
                        found.setdefault(f, _file_id(f, root or path))
            elif path.is_file():
                found.setdefault(path, _file_id(path, root or path.parent))
            else:
                raise FileNotFoundError(f"no such file or folder: {raw}")
    return found


def _fixed_part(pattern: str) -> Path:
    # the folder a glob pattern starts from: its parts before the first with a wildcard
    parts = Path(pattern).parts
    fixed = [p for p in itertools.takewhile(lambda p: not glob.has_magic(p), parts)]
    return Path(*fixed) if fixed else Path(".")


def _file_id(path: Path, root: Path) -> str | None:
    try:
        relative = path.resolve().relative_to(root.resolve())
    except ValueError:
        relative = Path(path.name)
    return id_from_path(relative.as_posix())


@dataclass
class IngestSummary:
    """Counts of an ingest run and why files failed."""

    created: int = 0
    updated: int = 0
    unchanged: int = 0
    skipped: int = 0
    failed: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        """For ``--json``."""
        return {
            "created": self.created,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "skipped": self.skipped,
            "failed": self.failed,
            "seconds": round(self.seconds, 3),
        }


def _read(path: Path) -> tuple[Path, bytes | None, str]:
    try:
        data = path.read_bytes()
    except OSError as e:
        return path, None, str(e)
    return path, data, hashlib.sha256(data).hexdigest()


def _chunks(items: Sequence[Path], size: int) -> Iterator[Sequence[Path]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def run_ingest(
    client: ApiClient,
    collection: str,
    files: dict[Path, str | None],
    *,
    batch: int,
    workers: int,
    progress: Progress | None,
) -> IngestSummary:
    """Upload ``files`` (path → item id, or None for the content's sha256) in batches,
    skipping those whose bytes are already stored, or were sent earlier in this run: a
    byte-identical copy keeps the original."""
    summary = IngestSummary()
    started = time.perf_counter()
    task = progress.add_task("ingest", total=len(files)) if progress else None
    sent: set[str] = set()
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for group in _chunks(list(files), batch):
            read = list(pool.map(_read, group))  # files are read (and hashed) in parallel
            for path, data, why in read:
                if data is None:
                    summary.failed[str(path)] = why
            ok = [(p, d, h) for p, d, h in read if d is not None]
            known: dict[str, list[str]] = {}
            if ok:
                known = client.call(
                    "POST",
                    f"/v1/collections/{collection}/items/lookup",
                    json={"sha256": sorted({h for _, _, h in ok})},
                )["found"]
            fresh = []
            for p, d, h in ok:
                if h not in known and h not in sent:
                    fresh.append((p, d, files[p] or h))
                    sent.add(h)
            summary.skipped += len(ok) - len(fresh)
            if fresh:
                _upload(client, collection, fresh, summary)
            if progress is not None and task is not None:
                progress.advance(task, len(group))
    summary.seconds = time.perf_counter() - started
    return summary


def _upload(
    client: ApiClient,
    collection: str,
    fresh: list[tuple[Path, bytes, str]],
    summary: IngestSummary,
) -> None:
    files = [("files", (p.name, d, "application/octet-stream")) for p, d, _ in fresh]
    meta = [{"path": str(p)} for p, _, _ in fresh]
    try:
        answer = client.call(
            "POST",
            f"/v1/collections/{collection}/images",
            files=files,
            data={"metadata": json.dumps(meta), "ids": json.dumps([i for _, _, i in fresh])},
        )
        statuses = answer["items"]
    except ClientError as e:
        if e.status not in (413, 422):
            raise
        # Every file of the batch failed: the problem's detail names the first; retry one
        # by one so each file gets its own reason.
        if len(fresh) == 1:
            summary.failed[str(fresh[0][0])] = str(e)
            return
        for one in fresh:
            _upload(client, collection, [one], summary)
        return
    for (path, _, _), status in zip(fresh, statuses, strict=True):
        if status["status"] == "error":
            summary.failed[str(path)] = status["error"]["detail"]
        else:
            setattr(summary, status["status"], getattr(summary, status["status"]) + 1)


class _Rate(TextColumn):
    def __init__(self) -> None:
        super().__init__("")

    def render(self, task: Any) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:,.0f} images/s" if speed else "– images/s")


def ingest(
    collection: Annotated[str, typer.Argument(help="Collection (created if absent).")],
    paths: Annotated[list[str], typer.Argument(help="Image files, folders or glob patterns.")],
    model: Annotated[str, typer.Option(help="Model for a new collection.")] = "tiny-shapes",
    batch: Annotated[int, typer.Option(help="Files per upload.", min=1, max=1024)] = 64,
    workers: Annotated[int, typer.Option(help="Threads reading files.", min=1)] = 4,
    url: UrlOpt = None,
    api_key: KeyOpt = None,
    as_json: JsonOpt = False,
    use_ray: Annotated[
        bool,
        typer.Option(
            "--ray",
            help="Embed on a Ray cluster (an actor pool of encoders) and write into the local "
            "data directory; a Parquet file gives texts (column `text`, optional `id`).",
        ),
    ] = False,
    ray_address: Annotated[
        str | None, typer.Option(help="Ray cluster to join (default: start a local one).")
    ] = None,
    actors: Annotated[int, typer.Option(help="Encoder actors (--ray).", min=1)] = 1,
    cpus_per_actor: Annotated[float, typer.Option(help="CPUs per actor (--ray).", min=0)] = 1.0,
    gpus_per_actor: Annotated[float, typer.Option(help="GPUs per actor (--ray).", min=0)] = 0.0,
) -> None:
    """Add images to COLLECTION; files already stored (same bytes) are skipped, so a rerun
    resumes where the last one stopped. Bad files are reported and do not stop the run."""
    parquet = [Path(p) for p in paths if p.lower().endswith(".parquet")]
    if parquet and not use_ray:
        raise fail("a Parquet file is read on Ray: add --ray")
    if use_ray and url:
        raise fail("--ray writes into the local data directory (LATENTSPACE_DATA_DIR): drop --url")
    if parquet and len(paths) > 1:
        raise fail("give one Parquet file of texts, or image files and folders, not both")
    try:
        files = find_images(paths) if not parquet else {}
    except FileNotFoundError as e:
        raise fail(str(e)) from e
    if not parquet and not files:
        raise fail(f"no image files under {', '.join(paths)}; nothing to ingest")
    if use_ray:
        from latentspace.cli.raying import ray_ingest

        ray_ingest(
            collection,
            files=None if parquet else files,
            parquet=parquet[0] if parquet else None,
            model=model,
            address=ray_address,
            actors=actors,
            cpus_per_actor=cpus_per_actor,
            gpus_per_actor=gpus_per_actor,
            batch=batch,
            as_json=as_json,
        )
        return
    console = Console(stderr=True)
    try:
        with open_client(url, api_key) as client:
            made = _missing(client, collection)
            client.ensure_collection(collection, model)
            columns = (
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TaskProgressColumn(),
                _Rate(),
                TimeElapsedColumn(),
            )
            with Progress(*columns, console=console, disable=as_json) as progress:
                summary = run_ingest(
                    client, collection, files, batch=batch, workers=workers, progress=progress
                )
            stored = summary.created + summary.updated + summary.unchanged
            if made and not stored + summary.skipped:  # this run made it and kept nothing
                client.call("DELETE", f"/v1/collections/{collection}")
                console.print(f"{collection}: removed again, as no file could be stored")
    except ClientError as e:
        raise fail(str(e)) from e
    if as_json:
        typer.echo(json.dumps({"files": len(files), **summary.as_dict()}))
    else:
        rate = stored / summary.seconds if summary.seconds else 0.0
        console.print(
            f"{len(files)} files: {summary.created} created, {summary.updated} updated, "
            f"{summary.unchanged} unchanged, {summary.skipped} skipped (already stored), "
            f"{len(summary.failed)} failed — {summary.seconds:.1f} s, {rate:,.0f} images/s"
        )
        for path, why in list(summary.failed.items())[:20]:
            console.print(f"  [yellow]failed[/yellow] {path}: {why.removeprefix(f'{path}: ')}")
        if len(summary.failed) > 20:
            console.print(f"  … and {len(summary.failed) - 20} more")
    if summary.failed:
        raise typer.Exit(code=1)


def _missing(client: ApiClient, collection: str) -> bool:
    try:  # whether the collection does not exist (yet)
        client.call("GET", f"/v1/collections/{collection}")
    except ClientError as e:
        if e.status != 404:
            raise
        return True
    return False


def _term(raw: str) -> dict[str, Any]:
    # "item:ID" a stored item, "direction:NAME" a direction, "keyword:WORDS" BM25; else text.
    kind, sep, value = raw.partition(":")
    if sep and kind in ("item", "direction", "keyword") and value:
        return {kind: value}
    return {"text": raw}


def search(
    collection: Annotated[str, typer.Argument(help="Collection to search.")],
    query: Annotated[str | None, typer.Argument(help="Text, item:ID or keyword:WORDS.")] = None,
    image: Annotated[Path | None, typer.Option("--image", help="Search with an image.")] = None,
    plus: Annotated[list[str] | None, typer.Option("--plus", help="Add a term.")] = None,
    minus: Annotated[list[str] | None, typer.Option("--minus", help="Subtract a term.")] = None,
    k: Annotated[int, typer.Option("-k", help="Results.", min=1)] = 10,
    filter: Annotated[str | None, typer.Option("--filter", help="A filter as JSON.")] = None,
    url: UrlOpt = None,
    api_key: KeyOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Search COLLECTION with text, an image, stored items and +/− terms."""
    terms = [_term(query)] if query else []
    if image is not None:
        try:
            terms.append({"image": base64.b64encode(image.read_bytes()).decode()})
        except OSError as e:
            raise fail(str(e)) from e
    terms += [_term(t) for t in plus or []]
    terms += [{**_term(t), "weight": -1.0} for t in minus or []]
    if not terms:
        raise fail("give a QUERY, --image or --plus terms")
    body: dict[str, Any] = {"query": {"terms": terms}, "k": k}
    if filter:
        try:
            body["filter"] = json.loads(filter)
        except json.JSONDecodeError as e:
            raise fail(f"--filter is not JSON: {e}") from e
    try:
        with open_client(url, api_key) as client:
            answer = client.call("POST", f"/v1/collections/{collection}/search", json=body)
    except ClientError as e:
        raise fail(str(e)) from e
    if as_json:
        typer.echo(json.dumps(answer))
        return
    table = Table("#", "id", "score", "metadata", "text / uri")
    for rank, hit in enumerate(answer["results"], 1):
        shown = hit.get("text") or hit.get("uri") or ""
        table.add_row(
            str(rank),
            hit["id"],
            f"{hit['score']:.4f}",
            json.dumps(hit.get("metadata") or {}),
            shown[:60],
        )
    Console().print(table)


def reindex(
    collection: Annotated[str, typer.Argument(help="Collection to rebuild.")],
    url: UrlOpt = None,
    api_key: KeyOpt = None,
) -> None:
    """Rebuild COLLECTION's index from the stored vectors (no re-encoding) and save it."""
    try:
        with open_client(url, api_key) as client:
            stats = client.call("POST", f"/v1/collections/{collection}/reindex")
    except ClientError as e:
        raise fail(str(e)) from e
    index = stats["index"]
    typer.echo(
        f"{collection}: {stats['count']} vectors in a {index['kind']} index, "
        f"recall@10 {index['recall_at_10']}"
    )


def demo(
    images: Annotated[int, typer.Option(help="Generated images.", min=8)] = 320,
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    serve_page: Annotated[bool, typer.Option("--serve/--no-serve", help="Serve after.")] = True,
) -> None:
    """Build the offline demo collection 'shapes' (generated tiny-shapes images, ids s0, s1,
    ..., metadata colour and shape) once, then serve the page."""
    from latentspace.embedder.models.shapes import generate

    settings = Settings()
    with open_client(None, None, settings) as client:
        client.ensure_collection(DEMO, "tiny-shapes")
        have = client.call("GET", f"/v1/collections/{DEMO}")["count"]
        if have < images:
            started = time.perf_counter()
            samples = list(enumerate(generate(images, seed=2024)))
            for lo in range(0, len(samples), 64):
                group = samples[lo : lo + 64]
                client.call(
                    "POST",
                    f"/v1/collections/{DEMO}/images",
                    files=[("files", (f"s{i}.png", _png(x.image), "image/png")) for i, x in group],
                    data={
                        "ids": json.dumps([f"s{i}" for i, _ in group]),
                        "metadata": json.dumps(
                            [{"colour": x.colour, "shape": x.shape} for _, x in group]
                        ),
                    },
                )
            typer.echo(
                f"demo: {images - have} images added to '{DEMO}' in "
                f"{time.perf_counter() - started:.1f} s",
                err=True,
            )
    if serve_page:
        serve(host=host, port=port, log_level="info", json_logs=False)


DEMO = "shapes"


def _png(image: Any) -> bytes:
    buffer = io.BytesIO()
    image.resize((128, 128)).save(buffer, format="PNG")
    return buffer.getvalue()
