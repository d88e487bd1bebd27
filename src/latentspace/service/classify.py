"""Zero-shot classification: items and images against text labels (or stored directions).

A label's vector is built as open_clip's zero-shot classifier builds its class weights
(prompt ensembling): every template is filled with the label, each prompt embedded and
L2-normalised, the prompts averaged and the mean normalised again. A label may instead
name a stored direction, whose (normalised) vector is then the class's. Inputs are
normalised too, so ``cosines / temperature`` are CLIP's logits, and a softmax over the
labels turns them into probabilities.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from latentspace import limits
from latentspace.embedder.images import image_pixels
from latentspace.errors import InvalidInput
from latentspace.service import collections
from latentspace.service.context import Context
from latentspace.service.encoders import decode_checked, embed_texts, require_encoder
from latentspace.store import directions as directions_repo
from latentspace.store import repository as repo
from latentspace.store.tables import CollectionRow
from latentspace.vectors import l2_normalise

__all__ = [
    "MAX_TEMPERATURE",
    "MIN_TEMPERATURE",
    "Classification",
    "Classifier",
    "Label",
    "LabelSpec",
    "Prediction",
    "build_classifier",
    "classify",
    "label_spec",
]

_MAX_LABEL_CHARS = 256
# Below this, 1 / temperature nears float64's range and the softmax would lose its numbers.
MIN_TEMPERATURE = 1e-6
MAX_TEMPERATURE = 1e6


@dataclass(frozen=True)
class Label:
    """A class to sort into: its name, and optionally the stored direction that is its
    vector (without one, the name's prompts are embedded)."""

    name: str
    direction: str | None = None


@dataclass(frozen=True)
class LabelSpec:
    """Labels with the prompt templates and temperature they are used with (the caller's,
    or the settings' where the caller gave none): what a classifier is built from, and
    what an auto-tag job stores so that a resumed job classifies as it began."""

    labels: tuple[Label, ...]
    templates: tuple[str, ...]
    temperature: float


@dataclass(frozen=True)
class Prediction:
    """A label and its probability."""

    label: str
    probability: float


@dataclass(frozen=True)
class Classification:
    """The top labels of one input: a stored item (``item``) or an uploaded image
    (``image``, its position in the request)."""

    item: str | None
    image: int | None
    labels: list[Prediction]


@dataclass(frozen=True)
class Classifier:
    """Normalised class vectors (one row per label) and the softmax temperature."""

    names: tuple[str, ...]
    vectors: np.ndarray
    temperature: float

    def probabilities(self, vectors: np.ndarray) -> np.ndarray:
        """``softmax(cos(vectors, classes) / temperature)``, one row per input vector (a
        zero vector gets the uniform distribution)."""
        inputs = np.asarray(vectors, dtype=np.float32)
        norms = np.linalg.norm(inputs, axis=1, keepdims=True)
        inputs = np.divide(inputs, norms, out=np.zeros_like(inputs), where=norms > 0)
        logits = (inputs @ self.vectors.T).astype(np.float64) / self.temperature
        logits -= logits.max(axis=1, keepdims=True)
        weights = np.exp(logits)
        out: np.ndarray = weights / weights.sum(axis=1, keepdims=True)
        return out

    def top(self, vectors: np.ndarray, k: int) -> list[list[Prediction]]:
        """The ``k`` most probable labels of each input vector, most probable first."""
        probabilities = self.probabilities(vectors)
        k = min(k, len(self.names))
        order = np.argsort(-probabilities, axis=1, kind="stable")[:, :k]
        return [
            [Prediction(self.names[j], float(row[j])) for j in ranks]
            for row, ranks in zip(probabilities, order, strict=True)
        ]


def label_spec(
    ctx: Context,
    labels: Sequence[Label],
    *,
    templates: Sequence[str] | None = None,
    temperature: float | None = None,
) -> LabelSpec:
    """Check labels, templates and temperature; the settings fill in what is not given.

    Raises:
        InvalidInput: no labels, a blank or repeated label, a template without ``{}``,
            a temperature outside [MIN_TEMPERATURE, MAX_TEMPERATURE].
        LimitExceeded: more labels than ``max_labels``, or more prompts than
            ``max_prompts`` (``LATENTSPACE_LIMITS__*``).
    """
    settings, limit = ctx.settings.classify, ctx.settings.limits
    if not labels:
        raise InvalidInput("classification needs at least one label")
    limits.check(limit, "max_labels", len(labels), "labels")
    seen: set[str] = set()
    for i, label in enumerate(labels):
        name = f"label {i}"
        if not label.name.strip():
            raise InvalidInput(f"{name} is empty")
        if len(label.name) > _MAX_LABEL_CHARS:
            raise InvalidInput(f"{name} is over {_MAX_LABEL_CHARS} characters")
        limits.check_string(label.name, name=name)
        if label.name in seen:
            raise InvalidInput(f"label {label.name!r} appears twice")
        seen.add(label.name)
        if label.direction is not None:
            limits.check_string(label.direction, name=f"{name} direction")
    chosen = tuple(templates) if templates is not None else tuple(settings.templates)
    if not chosen:
        raise InvalidInput("templates is empty; leave it out to use the default templates")
    for i, template in enumerate(chosen):
        limits.check_string(template, name=f"template {i}")
        if "{}" not in template:
            raise InvalidInput(f"template {i} ({template!r}) has no {{}} for the label")
    if len(set(chosen)) != len(chosen):
        raise InvalidInput("a template appears twice")
    texts = sum(label.direction is None for label in labels)
    subject = f"{texts} text labels × {len(chosen)} templates"
    limits.check(limit, "max_prompts", texts * len(chosen), "prompts", subject)
    chosen_temperature = settings.temperature if temperature is None else float(temperature)
    if not MIN_TEMPERATURE <= chosen_temperature <= MAX_TEMPERATURE:  # NaN fails this too
        raise InvalidInput(
            f"temperature must be between {MIN_TEMPERATURE:g} and {MAX_TEMPERATURE:g}, "
            f"got {chosen_temperature}"
        )
    return LabelSpec(tuple(labels), chosen, chosen_temperature)


def build_classifier(ctx: Context, collection: CollectionRow, spec: LabelSpec) -> Classifier:
    """The class vectors of ``spec``'s labels in ``collection``'s space.

    Raises:
        InvalidInput: text labels for a collection without a model (raw vectors), a text
            over the limits, a zero direction.
        NotFound: an unknown direction.
        UnsupportedModality: the collection's model cannot embed text.
    """
    vectors: dict[int, np.ndarray] = {}
    text_labels = [(i, lab.name) for i, lab in enumerate(spec.labels) if lab.direction is None]
    if text_labels:
        encoder = require_encoder(collections.encoder_of(ctx, collection), collection, "text")
        prompts = [t.replace("{}", name) for _, name in text_labels for t in spec.templates]
        embedded = embed_texts(ctx.live.encoders, encoder, prompts, ctx.settings.limits)
        per_label = l2_normalise(embedded, name="prompt vectors").reshape(
            len(text_labels), len(spec.templates), collection.dim
        )
        means = l2_normalise(per_label.mean(axis=1), name="label vectors")
        vectors.update({i: means[row] for row, (i, _) in enumerate(text_labels)})
    named = [(i, lab) for i, lab in enumerate(spec.labels) if lab.direction is not None]
    if named:
        with ctx.sessions() as session:
            for i, label in named:
                assert label.direction is not None
                row = directions_repo.get_direction(
                    session=session, collection=collection, name=label.direction
                )
                raw = np.frombuffer(row.vector, dtype=np.float32, count=collection.dim)
                vectors[i] = l2_normalise(raw[None, :], name=f"direction {label.direction!r}")[0]
    stacked = np.stack([vectors[i] for i in range(len(spec.labels))]).astype(np.float32)
    names = tuple(label.name for label in spec.labels)
    return Classifier(names, np.ascontiguousarray(stacked), spec.temperature)


def classify(
    ctx: Context,
    name: str,
    spec: LabelSpec,
    *,
    items: Sequence[str] = (),
    images: Sequence[bytes] = (),
    k: int = 1,
) -> list[Classification]:
    """The ``k`` most probable labels of each stored item and uploaded image: items first,
    in the order given, then images (fewer than ``k`` when there are fewer labels).

    Raises:
        NotFound: no such collection, item or direction.
        InvalidInput: nothing to classify, k below 1, a bad image, text labels for a
            raw-vector collection (and what :func:`build_classifier` raises).
        LimitExceeded: more inputs than ``max_batch``, k over ``max_labels``, over the
            image limits.
    """
    if k < 1:
        raise InvalidInput(f"k must be at least 1, got {k}")
    if not items and not images:
        raise InvalidInput("nothing to classify: give items (ids) or images")
    limit = ctx.settings.limits
    limits.check(limit, "max_labels", k, "labels per input", "k")
    limits.check_batch(limit, [*items, *images], "items and images")
    for i, external_id in enumerate(items):
        limits.check_string(external_id, name=f"item {i}")
    collection = collections.get(ctx, name)
    classifier = build_classifier(ctx, collection, spec)
    inputs = [_item_vectors(ctx, collection, items)] if items else []
    if images:
        inputs.append(_image_vectors(ctx, collection, images))
    tops = classifier.top(np.concatenate(inputs), k)
    return [
        Classification(
            item=items[i] if i < len(items) else None,
            image=i - len(items) if i >= len(items) else None,
            labels=labels,
        )
        for i, labels in enumerate(tops)
    ]


def _item_vectors(ctx: Context, collection: CollectionRow, items: Sequence[str]) -> np.ndarray:
    with ctx.sessions() as session:
        ids = [
            repo.get_item(session=session, collection=collection, external_id=external_id).id
            for external_id in items
        ]
        stored = repo.vectors_of(session=session, item_ids=ids, dim=collection.dim)
    return np.stack([stored[i] for i in ids])


def _image_vectors(ctx: Context, collection: CollectionRow, images: Sequence[bytes]) -> np.ndarray:
    limit = ctx.settings.limits
    encoder = require_encoder(collections.encoder_of(ctx, collection), collection, "image")
    total = 0
    for i, data in enumerate(images):
        # Sizes from the headers first: a small body of highly compressible images must not
        # decode to gigabytes of pixels.
        limits.check_image_bytes(limit, len(data), name=f"image {i}")
        total += image_pixels(data, name=f"image {i}", max_pixels=limit.max_image_pixels)
        limits.check(limit, "max_request_pixels", total, "pixels decoded by this request")
    decoded = [decode_checked(data, limit, name=f"image {i}") for i, data in enumerate(images)]
    return ctx.live.encoders.encode_images(encoder, decoded)
