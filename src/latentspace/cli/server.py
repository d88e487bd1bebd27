"""The local commands: encode, models, serve, and the database migrations (``db``)."""

from __future__ import annotations

import json
import logging
import socket
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import numpy as np
import typer

from latentspace.datadir import owner_of
from latentspace.errors import Conflict, LatentspaceError
from latentspace.settings import Settings

if TYPE_CHECKING:
    import uvicorn

__all__ = ["WORKER_LOGS", "db_app", "encode", "models", "serve"]

# How `serve --workers` tells its worker processes to log (not a user setting).
WORKER_LOGS = "LATENTSPACE_SERVE_WORKER_LOGS"

logger = logging.getLogger("latentspace.api.app")  # where the app's other start-up lines log


def _fail(error: Exception) -> typer.Exit:
    typer.secho(f"error: {error}", fg=typer.colors.RED, err=True)
    return typer.Exit(code=2)


def encode(
    model: Annotated[str, typer.Option("--model", "-m", help="Model spec.")] = "tiny-shapes",
    text: Annotated[list[str] | None, typer.Option("--text", "-t", help="A text to embed.")] = None,
    image: Annotated[
        list[Path] | None, typer.Option("--image", "-i", help="An image file to embed.")
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="Write vectors to .npy (else JSON lines on stdout)."),
    ] = None,
) -> None:
    """Embed texts and/or image files with MODEL; one vector per input, texts first."""
    from latentspace.embedder import create_encoder, encode_image_files

    texts, images = text or [], image or []
    if not texts and not images:
        raise _fail(ValueError("give at least one --text or --image"))
    settings = Settings()
    try:
        encoder = create_encoder(model, settings.encoder)
        rows: list[tuple[str, np.ndarray | None, str | None]] = [
            (t, v, None) for t, v in zip(texts, encoder.encode_text(texts), strict=True)
        ]
        image_rows: list[tuple[str, np.ndarray | None, str | None]] = [
            (str(p), None, None) for p in images
        ]
        for batch in encode_image_files(
            encoder, images, settings=settings.encoder, limits=settings.limits
        ):
            for position, vector in zip(batch.positions, batch.vectors, strict=True):
                image_rows[position] = (str(images[position]), vector, None)
            for position, problem in batch.errors.items():
                image_rows[position] = (str(images[position]), None, str(problem))
        rows += image_rows
    except LatentspaceError as e:
        raise _fail(e) from e
    failed = [r for r in rows if r[2] is not None]
    for name, _, error in failed:
        typer.secho(f"skipped {name}: {error}", fg=typer.colors.YELLOW, err=True)
    if out is not None:
        good = [v for _, v, _ in rows if v is not None]
        matrix = np.stack(good) if good else np.zeros((0, encoder.dim), np.float32)
        np.save(out, matrix)
        typer.echo(f"wrote {matrix.shape[0]}×{encoder.dim} vectors to {out}", err=True)
    else:
        for name, vector, _ in rows:
            if vector is not None:
                record = {"input": name, "model": encoder.name, "vector": vector.tolist()}
                sys.stdout.write(json.dumps(record) + "\n")
    if failed:
        raise typer.Exit(code=1)


def models(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    all_openclip: Annotated[
        bool, typer.Option("--all", help="List every open_clip pretrained tag too.")
    ] = False,
) -> None:
    """List model specs and whether each can load on this machine without a download."""
    from latentspace.embedder.availability import list_models

    settings = Settings()
    entries = list_models(settings.encoder, include_all_openclip=all_openclip)
    if as_json:
        typer.echo(json.dumps([e.as_dict() for e in entries], indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    # a spec is what users copy: never cut or wrapped; the location folds when it must
    longest = max((len(e.spec) for e in entries), default=4)
    table = Table()
    table.add_column("spec", no_wrap=True, min_width=longest)
    table.add_column("modalities", no_wrap=True)
    table.add_column("offline", no_wrap=True)
    table.add_column("where", overflow="fold")
    for e in entries:
        table.add_row(e.spec, ",".join(e.modalities), "yes" if e.offline else "no", e.where)
    console = Console()
    if not console.is_terminal:  # piped: as wide as the table needs, so nothing is cut
        console = Console(width=max(console.width, longest + 60))
    console.print(table)


def serve(
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    log_level: Annotated[str, typer.Option(help="debug, info, warning, error.")] = "info",
    json_logs: Annotated[bool, typer.Option(help="JSON-lines logs (else plain text).")] = True,
    workers: Annotated[
        int,
        typer.Option(
            min=1,
            max=256,
            help="Worker processes on one port and data directory; each holds every "
            "collection's index as a replica that tails the SQL oplog.",
        ),
    ] = 1,
) -> None:
    """Serve the HTTP API (and its OpenAPI docs at /docs) with uvicorn."""
    import os

    import uvicorn

    from latentspace.api import create_app
    from latentspace.api.app import served
    from latentspace.api.auth import is_loopback
    from latentspace.logs import configure_logging

    settings = Settings()
    if settings.auth == "on" and not settings.api_keys.strip() and not is_loopback(host):
        raise _fail(
            ValueError(
                f"refusing to serve on {host} without API keys: set LATENTSPACE_API_KEYS, "
                "bind 127.0.0.1, or set LATENTSPACE_AUTH=off if this network is trusted"
            )
        )
    owner = None if settings.cluster.replica else owner_of(settings.data_dir)
    if owner is not None:  # said here in one line, not by the app's lifespan with a traceback
        where = f" serving {owner.url}" if owner.url else ""
        raise _fail(
            Conflict(
                f"data directory {settings.data_dir} is in use by process {owner.pid}{where}; "
                "stop it, or point this one at it with --url (CLI) or another "
                "LATENTSPACE_DATA_DIR"
            )
        )
    configure_logging(log_level, json_lines=json_logs)
    if workers > 1:
        # Each worker is a fresh process that builds the app from the environment.
        os.environ["LATENTSPACE_CLUSTER__REPLICA"] = "true"
        os.environ["LATENTSPACE_CLUSTER__URL"] = f"http://{host}:{port}"
        os.environ[WORKER_LOGS] = json.dumps({"level": log_level, "json_lines": json_logs})
        logger.info("latentspace: %d workers at http://%s:%d", workers, host, port)
        uvicorn.run(
            "latentspace.api.app:create_app_from_env",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            log_config=None,
            access_log=False,
            proxy_headers=False,  # the app believes LATENTSPACE_TRUSTED_PROXIES only
        )
        return
    try:
        application = create_app(settings, url=f"http://{host}:{port}")
    except LatentspaceError as e:
        raise _fail(e) from e
    config = uvicorn.Config(
        served(application),
        host=host,
        port=port,
        log_config=None,
        access_log=False,
        proxy_headers=False,  # the app believes LATENTSPACE_TRUSTED_PROXIES only
    )
    _ready_server()(config).run()


def _ready_server() -> type[uvicorn.Server]:
    import uvicorn  # here, not at the top: the other commands start without it

    class ReadyServer(uvicorn.Server):
        """uvicorn's server, saying ``ready at`` once its socket listens (the app's start-up
        ends before uvicorn binds, so a line logged there would come too early)."""

        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets)
            if self.started:
                url = f"http://{self.config.host}:{self.config.port}"
                logger.info("latentspace ready at %s (the page at /, API docs at /docs)", url)

    return ReadyServer


def _database_url() -> str:
    settings = Settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)  # the default SQLite file lives there
    return settings.resolved_database_url()


db_app = typer.Typer(help="Database schema migrations (Alembic, shipped in the package).")


@db_app.command("upgrade")
def db_upgrade(
    revision: Annotated[str, typer.Argument(help="Target revision.")] = "head",
) -> None:
    """Migrate the database (LATENTSPACE_DATABASE_URL, default SQLite in the data dir) up."""
    from latentspace import migrations

    migrations.upgrade(_database_url(), revision)
    typer.echo(f"database at {revision}")


@db_app.command("downgrade")
def db_downgrade(
    revision: Annotated[str, typer.Argument(help="Target revision, e.g. base.")],
) -> None:
    """Migrate the database down to REVISION."""
    from latentspace import migrations

    migrations.downgrade(_database_url(), revision)
    typer.echo(f"database at {revision}")


@db_app.command("current")
def db_current() -> None:
    """Print the database's current revision."""
    from latentspace import migrations
    from latentspace.store.engine import make_engine

    engine = make_engine(_database_url())
    typer.echo(migrations.current_revision(engine) or "empty (no revision)")
    engine.dispose()
