"""Batch embedding on Ray Data: files or texts → a pool of encoder actors → the store.

The rows are a Ray Dataset (image files read and hashed by Ray tasks, or a Parquet file's
texts); what the collection already holds (same sha256) is dropped before encoding, so a
rerun resumes where the last one stopped. An actor pool (one encoder per GPU, or per
``cpus_per_actor`` CPUs) decodes and embeds; the driver writes the vectors and fields in
batched transactions through the same store code as every other write
(:func:`latentspace.service.items.write`), without touching the live index, and builds the
index once at the end from SQL. Servers on the same database follow the writes through the
oplog like any other.

Ray is imported only here, inside the functions: it is an optional extra.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from latentspace import limits
from latentspace.errors import InvalidInput, LatentspaceError
from latentspace.service import collections, items
from latentspace.service.context import Context
from latentspace.service.intake import content_sha256, write_blob
from latentspace.settings import EncoderSettings, LimitSettings
from latentspace.store import lookups
from latentspace.store.repository import ItemInput

__all__ = ["BatchSummary", "embed_on_ray"]

Batch = dict[str, np.ndarray]


@dataclass
class BatchSummary:
    """What a Ray batch run did; ``failed`` names each row that could not be stored."""

    rows: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    skipped: int = 0
    failed: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    actors: int = 0

    def as_dict(self) -> dict[str, Any]:
        """The summary as JSON-ready values."""
        return {
            "rows": self.rows,
            "created": self.created,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "skipped": self.skipped,
            "failed": dict(self.failed),
            "seconds": round(self.seconds, 3),
            "actors": self.actors,
        }


def _read_files(batch: Batch, stored: frozenset[str]) -> Batch:
    # A Ray task: read and hash each file; drop those the collection already holds.
    keep: dict[str, list[Any]] = {"name": [], "id": [], "data": [], "sha256": [], "error": []}
    for name, given in zip(batch["name"].tolist(), batch["id"].tolist(), strict=True):
        try:
            data = Path(name).read_bytes()
            error = ""
        except OSError as e:
            data, error = b"", f"{name}: {e.strerror or e}"
        digest = content_sha256(data) if not error else ""
        if digest in stored:
            continue
        for key, value in zip(keep, (name, given or digest, data, digest, error), strict=True):
            keep[key].append(value)
    return {key: np.array(values, dtype=object) for key, values in keep.items()}


def _hash_texts(batch: Batch, stored: frozenset[str]) -> Batch:
    # A Ray task: hash each text; drop those the collection already holds.
    texts = [str(t) for t in batch["text"].tolist()]
    digests = [content_sha256(t) for t in texts]
    ids = batch["id"].tolist() if "id" in batch else [None] * len(texts)
    rows = [
        (str(i) if i is not None else d, t, d)
        for i, t, d in zip(ids, texts, digests, strict=True)
        if d not in stored
    ]
    return {
        "name": np.array([i for i, _, _ in rows], dtype=object),
        "id": np.array([i for i, _, _ in rows], dtype=object),
        "text": np.array([t for _, t, _ in rows], dtype=object),
        "sha256": np.array([d for _, _, d in rows], dtype=object),
        "error": np.array([""] * len(rows), dtype=object),
    }


class _Encoder:
    """A Ray actor: one encoder, loaded once, embedding batches of images or texts."""

    def __init__(
        self, spec: str, fingerprint: str, encoder: dict[str, Any], limits: dict[str, Any]
    ) -> None:
        from latentspace.embedder import create_encoder

        self._encoder = create_encoder(spec, EncoderSettings(**encoder))
        if self._encoder.fingerprint != fingerprint:
            raise InvalidInput(f"model {spec!r} here has other weights than the collection's")
        self._limits = LimitSettings(**limits)

    def __call__(self, batch: Batch) -> Batch:
        n = len(batch["sha256"])
        vectors = np.zeros((n, self._encoder.dim), np.float32)
        errors = [str(e) for e in batch["error"].tolist()]
        phashes, pixels = np.full(n, -1, np.int64), np.zeros(n, np.int64)
        if "text" in batch:
            for i, text in enumerate(batch["text"].tolist()):
                try:
                    limits.check_text(self._limits, str(text), name=f"text of {batch['id'][i]}")
                except LatentspaceError as e:
                    errors[i] = errors[i] or str(e)
            good = [i for i in range(n) if not errors[i]]
            texts = [str(batch["text"][i]) for i in good]
            if good:
                vectors[good] = self._encoder.encode_text(texts)
        else:
            good, images = self._decode(batch, errors, phashes, pixels)
            if good:
                vectors[good] = self._encoder.encode_images(images)
        return {**batch, "vector": vectors, "phash": phashes, "pixels": pixels,
                "error": np.array(errors, dtype=object)}  # fmt: skip

    def _decode(
        self, batch: Batch, errors: list[str], phashes: np.ndarray, pixels: np.ndarray
    ) -> tuple[list[int], list[Any]]:
        from latentspace.embedder.images import perceptual_hash
        from latentspace.service.encoders import decode_checked

        good, images = [], []
        for i, (name, data) in enumerate(zip(batch["name"], batch["data"], strict=True)):
            if errors[i]:
                continue
            try:
                image = decode_checked(bytes(data), self._limits, name=str(name))
            except LatentspaceError as e:
                errors[i] = str(e)
                continue
            phashes[i], pixels[i] = perceptual_hash(image), image.width * image.height
            good.append(i)
            images.append(image)
        return good, images


def embed_on_ray(
    ctx: Context,
    name: str,
    *,
    files: dict[Path, str | None] | None = None,
    parquet: Path | None = None,
    actors: int = 1,
    cpus_per_actor: float = 1.0,
    gpus_per_actor: float = 0.0,
    batch_size: int = 64,
    write_batch: int = 512,
    on_progress: Callable[[int], None] | None = None,
) -> BatchSummary:
    """Embed ``files`` (path → id, None: its sha256) or the texts of a ``parquet`` file
    (column ``text``, optional ``id``) on a Ray actor pool and store them in ``name``.

    Ray must be initialised (``ray.init``) by the caller. The index is rebuilt once at the
    end when this process writes the index files; otherwise their holder follows the oplog.

    Raises:
        InvalidInput: neither or both inputs, or a collection without a model.
        NotFound: no such collection.
    """
    import ray.data
    from ray.data import ActorPoolStrategy

    if (files is None) == (parquet is None):
        raise InvalidInput("give image files or a Parquet file of texts, not both or neither")
    collection = collections.get(ctx, name)
    if collection.model is None:
        raise InvalidInput(f"collection {name!r} stores raw vectors: it has no model to embed")
    started = time.perf_counter()
    with ctx.sessions() as session:
        stored = frozenset(lookups.live_sha256(session=session, collection=collection))
    if files is not None:
        rows = [{"name": str(p), "id": i or ""} for p, i in files.items()]
        dataset = ray.data.from_items(rows).map_batches(
            partial(_read_files, stored=stored), batch_format="numpy", batch_size=batch_size
        )
        total = len(rows)
    else:
        assert parquet is not None
        source = ray.data.read_parquet(str(parquet))
        if "text" not in source.columns():
            raise InvalidInput(f"{parquet} has no `text` column")
        total = source.count()
        dataset = source.map_batches(
            partial(_hash_texts, stored=stored), batch_format="numpy", batch_size=batch_size
        )
    dataset = dataset.map_batches(
        _Encoder,
        fn_constructor_kwargs={
            "spec": collection.model,
            "fingerprint": collection.fingerprint,
            "encoder": ctx.settings.encoder.model_dump(mode="json"),
            "limits": ctx.settings.limits.model_dump(mode="json"),
        },
        compute=ActorPoolStrategy(size=actors),
        num_cpus=cpus_per_actor,
        num_gpus=gpus_per_actor,
        batch_size=batch_size,
        batch_format="numpy",
    )
    summary = BatchSummary(rows=total, actors=actors)
    seen = 0
    for batch in _batches(dataset, write_batch):
        _store(ctx, name, batch, summary)
        seen += len(batch["sha256"])
        if on_progress is not None:
            on_progress(len(batch["sha256"]))
    summary.skipped = total - seen
    if ctx.live.writes_files:
        ctx.live.indexes.rebuild(collection)  # once, from SQL, and saved
    summary.seconds = time.perf_counter() - started
    return summary


def _batches(dataset: Any, size: int) -> Iterator[Batch]:
    yield from dataset.iter_batches(batch_size=size, batch_format="numpy")


def _store(ctx: Context, name: str, batch: Batch, summary: BatchSummary) -> None:
    # One transaction for the batch's good rows; blobs first, as ingest does.
    inputs = []
    texts = "text" in batch
    for i in range(len(batch["sha256"])):
        label, error = str(batch["name"][i]), str(batch["error"][i])
        if error:
            summary.failed[label] = error
            continue
        sha = str(batch["sha256"][i])
        if texts:
            inputs.append(
                ItemInput(
                    str(batch["id"][i]), "text", sha, batch["vector"][i], text=str(batch["text"][i])
                )
            )
            continue
        data = bytes(batch["data"][i])
        if ctx.settings.store_images:
            write_blob(ctx.settings.data_dir, sha, data)
        path = Path(label)
        inputs.append(
            ItemInput(
                str(batch["id"][i]),
                "image",
                sha,
                batch["vector"][i],
                uri=path.name,
                metadata={"filename": path.name, "path": label},
                phash=int(batch["phash"][i]),
                pixels=int(batch["pixels"][i]),
                size_bytes=len(data),
            )
        )
    for outcome in items.write(ctx, name, inputs, index=False) if inputs else []:
        setattr(summary, outcome.status, getattr(summary, outcome.status) + 1)
