"""The CLI snapshot commands: snapshot and restore (the local data dir or --url)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from latentspace.cli.data import KeyOpt, UrlOpt, fail
from latentspace.client import ClientError, open_client
from latentspace.errors import InvalidInput
from latentspace.store.snapshot_file import read_manifest

__all__ = ["restore", "snapshot"]

_TAR = {"Content-Type": "application/x-tar"}


def snapshot(
    collection: Annotated[str, typer.Argument(help="Collection to snapshot.")],
    out: Annotated[Path, typer.Argument(help="File to write (replaced if it exists).")],
    url: UrlOpt = None,
    api_key: KeyOpt = None,
    originals: Annotated[
        bool | None,
        typer.Option(
            "--originals/--no-originals",
            help="Carry each image's stored original (default: when the collection holds "
            "images), so a restore elsewhere can serve, re-encode and migrate them.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Write COLLECTION (items, vectors, directions, settings, and its images' originals)
    into one snapshot file OUT."""
    body = None if originals is None else {"originals": originals}
    try:
        with open_client(url, api_key) as client:
            size = client.download(f"/v1/collections/{collection}/snapshot", out, json=body)
    except ClientError as e:
        raise fail(str(e)) from e
    typer.echo(f"{collection}: snapshot of {size:,} bytes written to {out}")


def restore(
    file: Annotated[Path, typer.Argument(help="Snapshot file to restore.")],
    name: Annotated[
        str | None, typer.Option("--name", help="Restore under this name instead.")
    ] = None,
    replace: Annotated[
        bool, typer.Option("--replace", help="Replace a collection of that name.")
    ] = False,
    url: UrlOpt = None,
    api_key: KeyOpt = None,
) -> None:
    """Restore a collection from snapshot FILE (as the collection it was, or --name); the
    server verifies the whole file before anything changes."""
    if not file.is_file():
        raise fail(f"no file {file}")
    try:
        target = name or str(read_manifest(file)["collection"]["name"])
    except (InvalidInput, KeyError, TypeError) as e:
        raise fail(f"{file}: {e}") from e
    params = {"replace": str(replace).lower()}
    try:
        with open_client(url, api_key) as client, file.open("rb") as body:
            path = f"/v1/collections/{target}/restore"
            stats = client.call("POST", path, content=body, headers=_TAR, params=params)
    except ClientError as e:
        if e.status == 409 and not replace:
            raise fail(
                f"{e}; restore it under another name with --name NEW, or over this one "
                "with --replace"
            ) from e
        raise fail(str(e)) from e
    typer.echo(f"{stats['name']}: {stats['count']} items restored from {file}")
