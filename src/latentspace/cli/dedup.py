"""The ``dedup`` command: duplicate clusters by tier, printed or as an HTML report."""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from latentspace.cli.data import JsonOpt, KeyOpt, UrlOpt, fail
from latentspace.client import ApiClient, ClientError, open_client

__all__ = ["dedup"]


def dedup(
    collection: Annotated[str, typer.Argument(help="Collection to scan.")],
    threshold: Annotated[float | None, typer.Option(help="Cosine of similar shots.")] = None,
    hamming: Annotated[int | None, typer.Option(help="pHash bits of the same image.")] = None,
    tier: Annotated[str, typer.Option(help="identical, same_image or similar.")] = "similar",
    limit: Annotated[int, typer.Option(help="Most clusters.", min=1)] = 100,
    html_out: Annotated[
        Path | None, typer.Option("--html", help="Write a report with thumbnails.")
    ] = None,
    url: UrlOpt = None,
    api_key: KeyOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Clusters of identical files, the same image (pHash) and similar shots (cosine)."""
    given = {"threshold": threshold, "hamming": hamming, "tier": tier, "limit": limit}
    params = {k: v for k, v in given.items() if v is not None}
    try:
        with open_client(url, api_key) as client:
            answer = client.call("GET", f"/v1/collections/{collection}/duplicates", params=params)
            if html_out is not None:
                html_out.write_text(_report(client, collection, answer))
    except ClientError as e:
        raise fail(str(e)) from e
    if as_json:
        typer.echo(json.dumps(answer))
        return
    console = Console()
    console.print(f"{len(answer['clusters'])} clusters ({_cuts(answer)})")
    for i, cluster in enumerate(answer["clusters"], 1):
        members = ", ".join(f"{m['id']} ({_evidence(m)})" for m in cluster["members"])
        console.print(f"{i}. keep {cluster['keep']}: {members}")
    if html_out is not None:
        console.print(f"wrote {html_out}")


def _cuts(answer: dict[str, Any]) -> str:
    return (
        f"up to {answer['tier']}: pHash ≤ {answer['hamming']} bits, cosine ≥ {answer['threshold']}"
    )


def _evidence(member: dict[str, Any]) -> str:
    bits = "" if member["hamming"] is None else f", {member['hamming']} bits"
    return f"{member['tier'] or 'representative'}, cosine {member['cosine']:.3f}{bits}"


def _report(client: ApiClient, collection: str, answer: dict[str, Any]) -> str:
    rows = []
    for i, cluster in enumerate(answer["clusters"], 1):
        cells = []
        for member in cluster["members"]:
            data = client.content(f"/v1/collections/{collection}/items/{member['id']}/image")
            img = (
                f'<img src="data:image;base64,{base64.b64encode(data).decode()}" '
                f'alt="{html.escape(member["id"])}">'
                if data
                else "<div class='none'>no image</div>"
            )
            cells.append(
                f"<figure>{img}<figcaption>{html.escape(member['id'][:24])}<br>"
                f"{html.escape(_evidence(member))}</figcaption></figure>"
            )
        rows.append(
            f"<section><h2>{i}. {cluster['tier']} ({len(cluster['members'])}), keep "
            f"{html.escape(cluster['keep'])}</h2><div class='row'>{''.join(cells)}</div></section>"
        )
    style = (
        "body{font-family:sans-serif;margin:2em}.row{display:flex;flex-wrap:wrap;gap:8px}"
        "figure{margin:0;text-align:center;font-size:12px}img{width:96px;height:96px;"
        "object-fit:contain;border:1px solid #ccc}"
    )
    title = f"Duplicates in {html.escape(collection)} ({html.escape(_cuts(answer))})"
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title>"
        f"<style>{style}</style></head><body><h1>{title}</h1>{''.join(rows)}</body></html>"
    )
