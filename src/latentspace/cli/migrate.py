"""The CLI migrate command: move a collection to another model (the local data dir or --url)."""

from __future__ import annotations

import time
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from latentspace.cli.data import KeyOpt, UrlOpt, fail
from latentspace.client import ClientError, open_client

__all__ = ["migrate"]


def migrate(
    collection: Annotated[str, typer.Argument(help="Collection to move.")],
    model: Annotated[str, typer.Argument(help="The new model's spec.")],
    mode: Annotated[
        str, typer.Option("--mode", help="reencode every item, or adapter: a sample + an adapter.")
    ] = "reencode",
    sample: Annotated[
        int, typer.Option("--sample", help="Items encoded by both models (adapter mode).")
    ] = 1000,
    url: UrlOpt = None,
    api_key: KeyOpt = None,
) -> None:
    """Re-encode COLLECTION with MODEL (or a sample of it, through a fitted adapter) and swap
    it in one step; waits for the job, showing its progress."""
    body = {"model": model, "mode": mode, "sample": sample}
    console = Console(stderr=True)
    try:
        with open_client(url, api_key) as client:
            job = client.call("POST", f"/v1/collections/{collection}/migrate", json=body)
            columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
            with Progress(*columns, TimeElapsedColumn(), console=console) as progress:
                task = progress.add_task(f"migrating {collection}", total=job["total"] or None)
                while job["state"] in ("queued", "running"):
                    time.sleep(0.2)
                    job = client.call("GET", f"/v1/jobs/{job['id']}")
                    progress.update(task, completed=job["done"], total=job["total"] or None)
    except ClientError as e:
        raise fail(str(e)) from e
    if job["state"] != "done":
        raise fail(f"migration job {job['id']} {job['state']}: {job.get('error') or ''}".strip())
    typer.echo(_summary(collection, model, job["params"].get("result", {})))


def _summary(collection: str, model: str, result: dict[str, Any]) -> str:
    line = (
        f"{collection}: now {model}; {result.get('reencoded', 0):,} items re-encoded, "
        f"{result.get('adapted', 0):,} through the adapter"
    )
    if "adapter" in result:
        line += (
            f"; {result['adapter']} adapter, held-out recall@10 against a re-encode "
            f"{result['recall_at_10']:.3f}"
        )
    dropped = result.get("directions_dropped") or []
    if dropped:
        line += f"; directions dropped: {', '.join(dropped)}"
    return line
