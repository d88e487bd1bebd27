"""The CLI snapshot commands: snapshot and restore (the local data dir or --url), to and
from a file or S3-compatible storage (``s3://bucket/key``)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated

import typer

from latentspace.backup_settings import parse_s3_url
from latentspace.cli.data import KeyOpt, UrlOpt, fail
from latentspace.client import ClientError, open_client
from latentspace.errors import InvalidInput, LatentspaceError, Unavailable
from latentspace.settings import Settings
from latentspace.store.snapshot_file import read_manifest

__all__ = ["restore", "snapshot"]

_TAR = {"Content-Type": "application/x-tar"}
# ``scheme://``: an object in a store (s3:// is the one served), not a local path
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def _checked_url(value: str) -> str | None:
    # The URL as given when ``value`` is one (refused here, in one line, when it is not a
    # usable s3:// URL); None for a local path.
    if not _URL.match(value):
        return None
    try:
        parse_s3_url(value)
    except InvalidInput as e:
        raise fail(str(e)) from e
    return value


def snapshot(
    collection: Annotated[str, typer.Argument(help="Collection to snapshot.")],
    out: Annotated[
        str,
        typer.Argument(
            help="File to write (replaced if it exists), or s3://bucket/key to upload to "
            "(the store the LATENTSPACE_BACKUP__ settings name).",
            show_default=False,
        ),
    ],
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
    into one snapshot file OUT, or upload it to OUT=s3://bucket/key."""
    target = _checked_url(out)
    body: dict[str, object] | None = None if originals is None else {"originals": originals}
    path = f"/v1/collections/{collection}/snapshot"
    try:
        with open_client(url, api_key) as client:
            if target is not None:
                saved = client.call("POST", path, json={**(body or {}), "target": target})
            else:
                size = client.download(path, Path(out), json=body)
    except ClientError as e:
        raise fail(str(e)) from e
    if target is not None:
        typer.echo(f"{collection}: snapshot of {saved['bytes']:,} bytes uploaded to {target}")
    else:
        typer.echo(f"{collection}: snapshot of {size:,} bytes written to {out}")


def restore(
    file: Annotated[
        str,
        typer.Argument(help="Snapshot file to restore, or s3://bucket/key.", show_default=False),
    ],
    name: Annotated[
        str | None, typer.Option("--name", help="Restore under this name instead.")
    ] = None,
    replace: Annotated[
        bool, typer.Option("--replace", help="Replace a collection of that name.")
    ] = False,
    url: UrlOpt = None,
    api_key: KeyOpt = None,
) -> None:
    """Restore a collection from snapshot FILE (a file, or s3://bucket/key), as the
    collection it was or --name; the server verifies the whole file before anything
    changes."""
    source = _checked_url(file)
    if source is None and not Path(file).is_file():
        raise fail(f"no file {file}")
    target = name or _snapshot_name(file, source)
    path = f"/v1/collections/{target}/restore"
    try:
        with open_client(url, api_key) as client:
            if source is not None:
                body = {"source": source, "replace": replace}
                stats = client.call("POST", path, json=body)
            else:
                with Path(file).open("rb") as f:
                    params = {"replace": str(replace).lower()}
                    stats = client.call("POST", path, content=f, headers=_TAR, params=params)
    except ClientError as e:
        if e.status == 409 and not replace:
            raise fail(
                f"{e}; restore it under another name with --name NEW, or over this one "
                "with --replace"
            ) from e
        raise fail(str(e)) from e
    typer.echo(f"{stats['name']}: {stats['count']} items restored from {file}")


def _snapshot_name(file: str, source: str | None) -> str:
    # The collection a snapshot holds, from its manifest (of an object: its start only,
    # read with this machine's backup settings).
    try:
        if source is not None:
            from latentspace.service.backups import manifest_of

            manifest, _ = manifest_of(Settings().backup, source)
        else:
            manifest = read_manifest(Path(file))
        return str(manifest["collection"]["name"])
    except (LatentspaceError, KeyError, TypeError) as e:
        # the server may reach the store where this machine cannot: --name skips the peek
        hint = "; or name the collection with --name" if isinstance(e, Unavailable) else ""
        shown = str(e) if file in str(e) else f"{file}: {e}"
        raise fail(f"{shown}{hint}") from e
