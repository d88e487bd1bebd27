"""`latentspace ingest … --ray`: batch embedding on a Ray cluster, written into the store."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from latentspace.errors import LatentspaceError, NotFound
from latentspace.settings import Settings

__all__ = ["ray_ingest"]


def ray_ingest(
    collection: str,
    *,
    files: dict[Path, str | None] | None,
    parquet: Path | None,
    model: str,
    address: str | None,
    actors: int,
    cpus_per_actor: float,
    gpus_per_actor: float,
    batch: int,
    as_json: bool,
) -> None:
    """Embed image files (or the texts of Parquet files) on Ray and store them in
    ``collection`` of the local data directory (created with ``model`` if absent)."""
    try:
        import ray
    except ImportError as e:
        raise _fail("--ray needs Ray: pip install 'latentspace[ray]'") from e
    from latentspace.cluster.raybatch import embed_on_ray
    from latentspace.service import collections, lifecycle

    settings = Settings()
    # Beside a server on the same data directory, this process is one more replica: it
    # writes to SQL, and the server follows the oplog.
    settings.cluster.replica = True
    console = Console(stderr=True)
    try:
        ctx = lifecycle.start(settings)
    except LatentspaceError as e:
        raise _fail(str(e)) from e
    try:
        try:
            collections.get(ctx, collection)
        except NotFound:
            collections.create(ctx, collection, model=model)
        logging.getLogger("ray").setLevel(logging.WARNING)
        if address is None:
            ray.init(address="local", num_cpus=os.cpu_count(), include_dashboard=False)
        else:
            ray.init(address=address)
        ray.data.DataContext.get_current().enable_progress_bars = False
        columns = (
            TextColumn("[bold]ray"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
        )
        with Progress(*columns, console=console, disable=as_json) as progress:
            total = len(files) if files is not None else None
            task = progress.add_task("ingest", total=total)
            summary = embed_on_ray(
                ctx,
                collection,
                files=files,
                parquet=parquet,
                actors=actors,
                cpus_per_actor=cpus_per_actor,
                gpus_per_actor=gpus_per_actor,
                batch_size=batch,
                on_progress=lambda n: progress.advance(task, n),
            )
    except LatentspaceError as e:
        raise _fail(str(e)) from e
    finally:
        if ray.is_initialized():
            ray.shutdown()
        lifecycle.stop(ctx)
    if as_json:
        typer.echo(json.dumps(summary.as_dict()))
    else:
        console.print(
            f"{summary.rows} rows on {summary.actors} Ray actor(s): {summary.created} created, "
            f"{summary.updated} updated, {summary.unchanged} unchanged, {summary.skipped} "
            f"skipped (already stored), {len(summary.failed)} failed — {summary.seconds:.1f} s"
        )
        for name, why in list(summary.failed.items())[:20]:
            console.print(f"  [yellow]failed[/yellow] {name}: {why.removeprefix(f'{name}: ')}")
    if summary.failed:
        raise typer.Exit(code=1)


def _fail(message: str) -> typer.Exit:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    return typer.Exit(code=2)
