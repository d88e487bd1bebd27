"""Auto-tagging: a background job that writes each item's top zero-shot label into its
metadata, where filters find it afterwards.

The job walks the collection's live items in id order, ``job_batch`` at a time, classifies
their stored vectors (nothing is re-encoded) and writes each batch's labels and the job's
progress in one transaction: the job's ``cursor`` is always the last item whose label is
committed, so a resumed job neither skips nor repeats an item.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import numpy as np
from sqlalchemy.orm import Session

from latentspace.errors import InvalidInput, NotFound
from latentspace.live import Commit
from latentspace.runner import ClaimedJob, JobOutcome
from latentspace.service import collections
from latentspace.service.classify import Classifier, Label, LabelSpec, build_classifier
from latentspace.service.context import Context
from latentspace.service.jobs import JobInfo, submit
from latentspace.store import jobs as jobs_repo
from latentspace.store import lookups, oplog
from latentspace.store import repository as repo
from latentspace.store.tables import CollectionRow

__all__ = ["FIELD_PATTERN", "KIND", "run", "start"]

KIND = "autotag"
# A metadata key the filter DSL can name (one path segment: no dots).
FIELD_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_\-]{0,63}$"
_FIELD = re.compile(FIELD_PATTERN)


def _check_field(value: str, what: str) -> None:
    if not _FIELD.match(value):
        raise InvalidInput(
            f"{what} {value!r} is not a metadata key a filter can name: 1-64 letters, digits, "
            "'_' or '-', not starting with '-'"
        )


def start(
    ctx: Context,
    name: str,
    spec: LabelSpec,
    *,
    field: str = "label",
    min_probability: float | None = None,
    probability_field: str | None = None,
) -> JobInfo:
    """Queue a job that tags every live item of collection ``name`` with its top label.

    The labels are checked (and embedded) now, so a job that could not run is refused
    here rather than failing later.

    Args:
        spec: labels, templates and temperature (see ``classify.label_spec``).
        field: the metadata key that receives the label.
        min_probability: items whose top label is less probable are left as they are.
        probability_field: a metadata key that receives the top label's probability.

    Raises:
        NotFound: no such collection, or an unknown direction.
        InvalidInput: a bad field name or probability, text labels for a raw-vector
            collection (and what ``classify.build_classifier`` raises).
    """
    _check_field(field, "field")
    if probability_field is not None:
        _check_field(probability_field, "probability_field")
        if probability_field == field:
            raise InvalidInput("probability_field must differ from field")
    if min_probability is not None and not 0.0 <= min_probability <= 1.0:
        raise InvalidInput(f"min_probability must be between 0 and 1, got {min_probability}")
    collection = collections.get(ctx, name)
    build_classifier(ctx, collection, spec)
    params: dict[str, Any] = {
        "labels": [{"label": lab.name, "direction": lab.direction} for lab in spec.labels],
        "templates": list(spec.templates),
        "temperature": spec.temperature,
        "field": field,
        "min_probability": min_probability,
        "probability_field": probability_field,
    }
    with ctx.sessions() as session:
        total = repo.count_live(session=session, collection=collection)
    return submit(ctx, collection, KIND, params, total=total)


def _spec(params: dict[str, Any]) -> LabelSpec:
    labels = tuple(Label(lab["label"], lab.get("direction")) for lab in params["labels"])
    return LabelSpec(labels, tuple(params["templates"]), float(params["temperature"]))


def run(ctx: Context, job: ClaimedJob, should_stop: Callable[[], bool]) -> JobOutcome:
    """The job's handler (see :class:`~latentspace.runner.JobRunner`): tag the
    items after the job's cursor, a batch per transaction, until none are left or it is
    asked to stop."""
    with ctx.sessions() as session:
        collection = jobs_repo.collection_by_id(session=session, collection_id=job.collection_id)
    params = job.params
    classifier = build_classifier(ctx, collection, _spec(params))
    batch = ctx.settings.classify.job_batch
    done, total, cursor = job.done, job.total, job.cursor
    while not should_stop():
        with ctx.sessions() as session:
            rows = [
                (row.id, row.external_id)
                for row in lookups.list_items(
                    session=session, collection=collection, limit=batch, after=cursor
                )
            ]
            stored = repo.vectors_of(
                session=session, item_ids=[i for i, _ in rows], dim=collection.dim
            )
        tags = _labels(rows, stored, classifier, params)
        # Written in a transaction of their own: each item's metadata is read afresh and
        # merged, so what another write changed meanwhile stays.
        with ctx.sessions() as session:
            changed = _tag(session, collection, tags)
            if rows:
                done, cursor = done + len(rows), rows[-1][0]
            else:
                total = done  # finished: what is done is the whole
            total = max(total, done)
            if not jobs_repo.advance(
                session=session, job_id=job.id, done=done, total=total, cursor=cursor
            ):
                session.rollback()
                return "stopped"  # cancelled, or the collection is gone
            session.commit()
        with ctx.live.writing(collection):  # the metadata filters and hits show changed
            ctx.live.committed(collection, Commit(stale=changed))
        if not rows:
            return "done"
    return "stopped"


def _labels(
    rows: list[tuple[int, str]],
    stored: dict[int, np.ndarray],
    classifier: Classifier,
    params: dict[str, Any],
) -> list[tuple[int, str, dict[str, Any]]]:
    # (item id, external id, metadata to merge) of the batch's items whose top label is
    # probable enough; items without a stored vector are left alone.
    rows = [(i, external) for i, external in rows if i in stored]
    if not rows:
        return []
    best = [labels[0] for labels in classifier.top(np.stack([stored[i] for i, _ in rows]), 1)]
    field, floor = params["field"], params.get("min_probability")
    probability_field = params.get("probability_field")
    out = []
    for (item_id, external_id), prediction in zip(rows, best, strict=True):
        if floor is not None and prediction.probability < floor:
            continue
        metadata: dict[str, Any] = {field: prediction.label}
        if probability_field is not None:
            metadata[probability_field] = round(prediction.probability, 6)
        out.append((item_id, external_id, metadata))
    return out


def _tag(
    session: Session, collection: CollectionRow, tags: list[tuple[int, str, dict[str, Any]]]
) -> list[int]:
    # Merge the labels into the items' metadata; the ids of the items changed (an item
    # deleted since the batch was read is skipped).
    oplog.serialize(session=session, collection=collection)
    changed = []
    for item_id, external_id, metadata in tags:
        try:
            repo.update_metadata(
                session=session, collection=collection, external_id=external_id, metadata=metadata
            )
        except NotFound:
            continue
        changed.append(item_id)
    return changed
