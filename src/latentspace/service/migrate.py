"""Model migration: move a collection to another model, as a background job.

``reencode`` (the default) encodes every item's original (its text, or its stored image
file) with the new model; ``adapter`` encodes only a sample of them, fits an adapter old →
new on the sample (``index.adapter``) and carries every other item's stored vector through
it. Either way:

- the new vectors are written beside the old ones (``migration_vectors``), a batch per
  transaction with the job's cursor, so a stopped or crashed job resumes where it was;
- searches and writes use the old model meanwhile; writes made during the migration reach
  the new space too: before the swap the job re-encodes every item whose content changed
  since it was encoded (its sha256 differs) or that is new, and the last of them under the
  collection's write lock, so none slips between;
- the swap is one transaction, under that lock: every item's vector, every direction, the
  model, dim and fingerprint, the adapter (fitted in both modes, on the items encoded by
  both models, so clients of the old model may still query: a term's ``model``), and a
  ``model`` oplog row that makes every process reload the collection. The index is rebuilt
  from the new vectors; a map fitted before is fitted again.

The job's result (counts, the adapter's held-out recall@10 against a re-encode, the
directions that could not be carried) is kept in its ``params.result``.
"""

from __future__ import annotations

import bisect
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from latentspace.embedder import Encoder, encode_image_files
from latentspace.embedder.registry import canonical_spec
from latentspace.errors import Conflict, InvalidInput
from latentspace.index.adapter import AdapterChoice, AdapterFit, fit_adapter
from latentspace.runner import ClaimedJob, JobOutcome
from latentspace.service import collections, maps
from latentspace.service import directions as directions_service
from latentspace.service.context import Context
from latentspace.service.intake import blob_path, original_intact
from latentspace.service.jobs import JobInfo, submit
from latentspace.service.maps import MapMethod
from latentspace.store import directions as directions_repo
from latentspace.store import jobs as jobs_repo
from latentspace.store import migrate as migrate_repo
from latentspace.store import oplog
from latentspace.store.migrate import ItemSource
from latentspace.store.tables import CollectionRow

__all__ = ["KIND", "MigrateMode", "run", "start"]

logger = logging.getLogger(__name__)

KIND = "migrate"
MigrateMode = Literal["reencode", "adapter"]
_MIN_PAIRS = 24


def _has_original(ctx: Context, item: ItemSource) -> bool:
    if item.kind == "text":
        return item.text is not None
    if item.kind == "image":
        return blob_path(ctx.settings.data_dir, item.sha256).is_file()
    return False


def start(
    ctx: Context,
    name: str,
    model: str,
    *,
    mode: MigrateMode = "reencode",
    adapter: AdapterChoice | None = "auto",
    sample: int = 1000,
    rank: int | None = None,
    seed: int = 0,
) -> JobInfo:
    """Queue a job that moves collection ``name`` to ``model``.

    Args:
        mode: ``reencode`` every item, or encode a ``sample`` and carry the rest through
            an ``adapter``.
        adapter: the adapter kind to fit (``auto`` keeps the better on held-out items), or
            None for none (``reencode`` only).
        sample: items encoded by both models in ``adapter`` mode.
        rank: the affine adapter's rank (None: full).
        seed: the sample's and the held-out split's random seed.

    Raises:
        NotFound: no such collection.
        InvalidInput: a raw-vector collection, a model that cannot embed the items, items
            without originals in ``reencode`` mode, too few of them for an adapter, or a
            server searching on Ray shards.
        Conflict: the collection already uses the model, or a migration is under way.
        EncoderError: the model cannot be loaded.
    """
    collection = collections.get(ctx, name)
    if ctx.settings.cluster.shards:
        raise InvalidInput(
            "model migration is not supported with sharded search (LATENTSPACE_CLUSTER__SHARDS):"
            " the shards would keep the old space; migrate on a server without shards"
        )
    if collection.model is None:
        raise InvalidInput(
            f"collection {name!r} stores raw vectors (no model): there is nothing to re-encode"
        )
    if mode == "adapter" and adapter is None:
        raise InvalidInput("mode 'adapter' needs an adapter kind (auto, procrustes or affine)")
    if rank is not None and rank < 1:
        raise InvalidInput(f"rank must be at least 1, got {rank}")
    target = canonical_spec(model)
    encoder = ctx.live.encoders.get(target)
    if encoder.fingerprint == collection.fingerprint:
        raise Conflict(f"collection {name!r} already uses model {target!r} (same fingerprint)")
    with ctx.sessions.begin() as session:
        earlier = [
            j for j in jobs_repo.list_jobs(session=session, collection=collection) if j.kind == KIND
        ]
        if any(j.state in ("queued", "running") for j in earlier):
            raise Conflict(f"collection {name!r} is being migrated already; cancel that job first")
        # what cancelled or failed migrations had encoded is of no use any more
        migrate_repo.drop_pending(session=session, job_ids=[j.id for j in earlier])
        sources = migrate_repo.item_sources(session=session, collection=collection)
    originals = [s for s in sources if _has_original(ctx, s)]
    for modality in sorted({"text" if s.kind == "text" else "image" for s in originals}):
        if modality not in encoder.modalities:
            raise InvalidInput(f"model {target!r} cannot embed {modality}, which the items hold")
    missing = len(sources) - len(originals)
    if mode == "reencode" and missing:
        raise InvalidInput(
            f"{missing} of {len(sources)} items of {name!r} have no original to re-encode (raw "
            "vectors, or images stored without their file): migrate with mode 'adapter'"
        )
    params: dict[str, Any] = {
        "model": target,
        "fingerprint": encoder.fingerprint,
        "dim": encoder.dim,
        "source_model": collection.model,
        "source_fingerprint": collection.fingerprint,
        "mode": mode,
        "adapter": adapter,
        "rank": rank,
        "seed": seed,
    }
    total = len(sources)
    if mode == "adapter":
        if len(originals) < _MIN_PAIRS:
            raise InvalidInput(
                f"an adapter needs at least {_MIN_PAIRS} items with originals; "
                f"{name!r} has {len(originals)}"
            )
        if sample < _MIN_PAIRS:
            raise InvalidInput(f"sample must be at least {_MIN_PAIRS}, got {sample}")
        rng = np.random.default_rng(seed)
        chosen = rng.choice(len(originals), size=min(sample, len(originals)), replace=False)
        params["_sample_ids"] = sorted(originals[int(i)].id for i in chosen)
        total = len(params["_sample_ids"])
    return submit(ctx, collection, KIND, params, total=total)


@dataclass
class _Run:
    ctx: Context
    job: ClaimedJob
    collection: CollectionRow
    encoder: Encoder
    params: dict[str, Any]

    sample: list[int] | None = None  # adapter mode: the sorted ids to encode

    def __post_init__(self) -> None:
        ids = self.params.get("_sample_ids")
        self.sample = None if ids is None else sorted(int(i) for i in ids)

    def next_batch(self, cursor: int, batch: int) -> tuple[list[ItemSource], int | None]:
        """The next items to encode after ``cursor``, and the cursor past them (None when
        there are none left)."""
        with self.ctx.sessions() as session:
            if self.sample is None:
                items = migrate_repo.item_sources(
                    session=session, collection=self.collection, after=cursor, limit=batch
                )
                return items, (items[-1].id if items else None)
            start = bisect.bisect_right(self.sample, cursor)
            chunk = self.sample[start : start + batch]
            if not chunk:
                return [], None
            items = migrate_repo.item_sources(
                session=session, collection=self.collection, ids=chunk
            )
            return items, chunk[-1]

    def encode(self, items: Sequence[ItemSource]) -> list[tuple[int, str, np.ndarray]]:
        """(id, sha256, new vector) of the items whose original is here and intact (an image
        file that no longer matches its sha256 is left out, like a missing one, and named
        by ``/readyz``).

        Raises:
            InvalidInput: a stored original that no longer decodes (the job fails).
        """
        ctx, settings = self.ctx, self.ctx.settings
        texts = [s for s in items if s.kind == "text" and s.text is not None]
        out = []
        if texts:
            vectors = ctx.live.encoders.encode_text(self.encoder, [s.text or "" for s in texts])
            out += [(s.id, s.sha256, v) for s, v in zip(texts, vectors, strict=True)]
        images = [
            s
            for s in items
            if s.kind == "image" and original_intact(ctx, self.collection, s.id, s.sha256)
        ]
        if images:
            started = time.perf_counter()
            paths = [blob_path(settings.data_dir, s.sha256) for s in images]
            for batch in encode_image_files(
                self.encoder, paths, settings=settings.encoder, limits=settings.limits
            ):
                if batch.errors:
                    position, error = next(iter(batch.errors.items()))
                    raise InvalidInput(f"item {images[position].id}: {error}") from error
                for position, vector in zip(batch.positions, batch.vectors, strict=True):
                    out.append((images[position].id, images[position].sha256, vector))
            ctx.live.encoders.on_timing("encode", "image", time.perf_counter() - started)
        return out

    def stale(self) -> list[ItemSource]:
        """Items to encode (again): without a new vector, or changed since it was made; in
        adapter mode only the sample's (the rest go through the adapter)."""
        with self.ctx.sessions() as session:
            sources = migrate_repo.item_sources(
                session=session, collection=self.collection, ids=self.sample
            )
            encoded = migrate_repo.pending_hashes(session=session, job_id=self.job.id)
        return [s for s in sources if encoded.get(s.id) != s.sha256 and _has_original(self.ctx, s)]


def run(ctx: Context, job: ClaimedJob, should_stop: Callable[[], bool]) -> JobOutcome:
    """The job's handler: encode in batches from the cursor, catch up with the writes made
    meanwhile, fit the adapter, swap (see the module's docstring)."""
    params = job.params
    with ctx.sessions() as session:
        collection = jobs_repo.collection_by_id(session=session, collection_id=job.collection_id)
    if collection.fingerprint == params["fingerprint"]:
        return "done"  # swapped before a restart ended the job
    if collection.fingerprint != params["source_fingerprint"]:
        raise Conflict(f"collection {collection.name!r} moved to another model meanwhile")
    encoder = ctx.live.encoders.checked(params["model"], params["fingerprint"])
    state = _Run(ctx, job, collection, encoder, params)
    batch = ctx.settings.migrate.batch
    done, total, cursor = job.done, job.total, job.cursor
    while True:
        if should_stop():
            return "stopped"
        items, past = state.next_batch(cursor, batch)
        if past is None:
            break
        encoded = state.encode(items)
        with ctx.sessions.begin() as session:
            migrate_repo.put_pending(session=session, job_id=job.id, vectors=encoded)
            done, cursor = done + len(items), past
            total = max(total, done)
            if not jobs_repo.advance(
                session=session, job_id=job.id, done=done, total=total, cursor=cursor
            ):
                session.rollback()
                return "stopped"
    # Writes made meanwhile: encoded outside the lock while there are many of them.
    for _ in range(3):
        stale = state.stale()
        if len(stale) <= batch:
            break
        for start in range(0, len(stale), batch):
            if should_stop():
                return "stopped"
            with ctx.sessions.begin() as session:
                migrate_repo.put_pending(
                    session=session,
                    job_id=job.id,
                    vectors=state.encode(stale[start : start + batch]),
                )
    if should_stop():
        return "stopped"
    fitted = _fit(state)
    _swap(state, fitted)
    return "done"


def _fit(state: _Run) -> AdapterFit | None:
    # The adapter, fitted on items encoded by both models whose content has not changed.
    choice = state.params.get("adapter")
    if choice is None:
        return None
    ctx, collection = state.ctx, state.collection
    with ctx.sessions() as session:
        pending = migrate_repo.pending_vectors(
            session=session, job_id=state.job.id, dim=state.params["dim"]
        )
        current = {
            s.id: s.sha256
            for s in migrate_repo.item_sources(session=session, collection=collection)
        }
        ids = [i for i, (sha, _) in pending.items() if current.get(i) == sha]
        if len(ids) > ctx.settings.migrate.adapter_pairs:
            rng = np.random.default_rng(int(state.params.get("seed", 0)))
            ids = sorted(
                rng.choice(ids, size=ctx.settings.migrate.adapter_pairs, replace=False).tolist()
            )
        old = migrate_repo.stored_vectors(session=session, item_ids=ids, dim=collection.dim)
    ids = [i for i in ids if i in old]
    if len(ids) < _MIN_PAIRS:
        if state.params["mode"] == "adapter":
            raise InvalidInput(
                f"only {len(ids)} items are encoded by both models; an adapter needs {_MIN_PAIRS}"
            )
        return None
    return fit_adapter(
        np.stack([old[i] for i in ids]),
        np.stack([pending[i][1] for i in ids]),
        kind=choice,
        seed=int(state.params.get("seed", 0)),
        rank=state.params.get("rank"),
    )


def _swap(state: _Run, fitted: AdapterFit | None) -> None:
    ctx, collection, params = state.ctx, state.collection, state.params
    with ctx.live.writing(collection), ctx.sessions.begin() as session:
        oplog.serialize(session=session, collection=collection)
        sources = migrate_repo.item_sources(session=session, collection=collection)
        pending = migrate_repo.pending_vectors(
            session=session, job_id=state.job.id, dim=params["dim"]
        )
        vectors = {
            s.id: pending[s.id][1]
            for s in sources
            if s.id in pending and pending[s.id][0] == s.sha256
        }
        late = [s for s in sources if s.id not in vectors]
        if params["mode"] == "reencode":
            vectors.update({i: v for i, _, v in state.encode(late)})
        rest = [s.id for s in sources if s.id not in vectors]
        if rest and fitted is None:
            raise InvalidInput(
                f"{len(rest)} items have no original to re-encode (written during the migration "
                "without one, or a stored original that no longer matches its sha256, named by "
                "/readyz) and there is no adapter to carry them; upload them again and migrate"
            )
        if rest and fitted is not None:
            old = migrate_repo.stored_vectors(session=session, item_ids=rest, dim=collection.dim)
            damaged = [i for i in rest if i not in old]
            if damaged:  # never leave an old-space vector behind in the new space
                raise InvalidInput(
                    f"{len(damaged)} items (ids {damaged[:5]}…) have no readable stored vector "
                    "to carry through the adapter; re-ingest or delete them and migrate again"
                )
            mapped = fitted.adapter.apply(np.stack([old[i] for i in rest]))
            vectors.update(zip(rest, mapped, strict=True))
        adapter = None if fitted is None else fitted.adapter
        directions, dropped = directions_service.in_new_space(
            session,
            collection,
            lambda text: ctx.live.encoders.encode_text(state.encoder, [text])[0],
            vectors,
            adapter,
        )
        for direction_name in dropped:
            directions_repo.delete_direction(
                session=session, collection=collection, name=direction_name
            )
        result: dict[str, Any] = {
            "reencoded": len(sources) - len(rest),
            "adapted": len(rest),
            "directions_kept": len(directions),
            "directions_dropped": dropped,
        }
        if fitted is not None:
            result.update(
                adapter=fitted.adapter.kind,
                recall_at_10=fitted.recall_at_10,
                adapter_scores=dict(fitted.scores),
                fitted_on=fitted.fitted_on,
                held_out=fitted.held_out,
            )
        migrate_repo.swap_model(
            session=session,
            collection=collection,
            job_id=state.job.id,
            model=params["model"],
            dim=params["dim"],
            fingerprint=params["fingerprint"],
            vectors=vectors,
            directions=directions,
            result=result,
        )
        if fitted is not None:
            migrate_repo.put_adapter(
                session=session,
                collection=collection,
                source_model=params["source_model"],
                source_fingerprint=params["source_fingerprint"],
                target_fingerprint=params["fingerprint"],
                kind=fitted.adapter.kind,
                matrix=fitted.adapter.matrix,
                bias=fitted.adapter.bias,
                recall_at_10=fitted.recall_at_10,
                fitted_on=fitted.fitted_on + fitted.held_out,
            )
    logger.info("collection %s: migrated to %s (%s)", collection.name, params["model"], result)
    fitted_map = ctx.live.maps.fitted(collection)
    ctx.live.remodelled(collection)
    ctx.live.indexes.open(collections.get(ctx, collection.name))  # built now, not by a search
    if fitted_map is not None:  # the new space gets a map of its own
        method: MapMethod = "pca" if fitted_map.view.method == "pca" else "auto"
        maps.start(ctx, collection.name, method=method)
