"""The ``latentspace`` command line (Typer).

server       encode, models, serve, db upgrade | downgrade | current
data         ingest, search, reindex, demo (the local data dir, or --url)
raying       ingest --ray: batch embedding on a Ray cluster, written into the store
dedup        dedup: duplicate clusters by tier (text or an HTML report)
snapshots    snapshot, restore: a collection into one file and back
migrate      migrate: a collection to another model
"""

from __future__ import annotations

from collections.abc import Callable

import typer

from latentspace.cli import data, dedup, migrate, server, snapshots

__all__ = ["app", "main"]


def build_app() -> typer.Typer:
    """The CLI with every command registered."""
    cli = typer.Typer(
        name="latentspace",
        help="Text and images in one CLIP latent space: encode, index, search.",
        no_args_is_help=True,
        add_completion=False,
    )
    commands: list[Callable[..., None]] = [server.encode, server.models, server.serve]
    commands += [data.ingest, data.search, dedup.dedup, data.reindex, data.demo]
    commands += [snapshots.snapshot, snapshots.restore, migrate.migrate]
    for command in commands:
        cli.command()(command)
    cli.add_typer(server.db_app, name="db")
    return cli


app = build_app()


def main() -> None:
    """Entry point of the ``latentspace`` script."""
    app()
