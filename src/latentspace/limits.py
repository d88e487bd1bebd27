"""Every limit on what a caller may send, checked in one place with one message shape.

Each limit is a field of :class:`~latentspace.settings.LimitSettings`; going over one raises
:class:`~latentspace.errors.LimitExceeded` (HTTP 413) with the message
``"<subject>: <value> <unit>, over the limit of <limit> (LATENTSPACE_LIMITS__<FIELD>)"``,
so a client learns what was too large, by how much, and which setting moves the line.
The API states the same limits in its OpenAPI schema (``maximum``, ``maxItems``) from
:data:`STATED`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sized

from latentspace.errors import InvalidInput, LimitExceeded
from latentspace.settings import LimitSettings

__all__ = [
    "MAX_URI_CHARS",
    "STATED",
    "check",
    "check_batch",
    "check_id",
    "check_image_bytes",
    "check_json",
    "check_k",
    "check_string",
    "check_text",
    "id_from_path",
    "over_limit",
]

# The longest uri an item may carry (a fixed bound: a URL, not content).
MAX_URI_CHARS = 4096

# Request fields the OpenAPI schema annotates: (schema, property) → (limit field, keyword).
STATED: dict[tuple[str, str], tuple[str, str]] = {
    ("SearchRequest", "k"): ("max_k", "maximum"),
    ("Body_search_image", "k"): ("max_k", "maximum"),
    ("ClassifyRequest", "k"): ("max_labels", "maximum"),
    ("RerankRequest", "documents"): ("max_batch", "maxItems"),
    ("RerankRequest", "top_n"): ("max_batch", "maximum"),
    ("RerankIn", "candidates"): ("max_k", "maximum"),
    ("CompositeQuery", "terms"): ("max_batch", "maxItems"),
    ("ItemsUpsert", "items"): ("max_batch", "maxItems"),
    ("DocumentsCreate", "documents"): ("max_batch", "maxItems"),
    ("HashLookup", "sha256"): ("max_batch", "maxItems"),
    ("ItemsGet", "ids"): ("max_batch", "maxItems"),
    ("ItemsDelete", "ids"): ("max_batch", "maxItems"),
    ("PathRequest", "steps"): ("max_path_steps", "maximum"),
    ("ItemCreate", "text"): ("max_text_chars", "maxLength"),
    ("TermIn", "text"): ("max_text_chars", "maxLength"),
    ("ClassifyRequest", "labels"): ("max_labels", "maxItems"),
    ("ClassifyRequest", "items"): ("max_batch", "maxItems"),
    ("ClassifyRequest", "images"): ("max_batch", "maxItems"),
    ("AutotagRequest", "labels"): ("max_labels", "maxItems"),
}


def over_limit(field: str, limit: int, value: int, unit: str, subject: str = "") -> LimitExceeded:
    """The error for ``value`` over the limit named by ``field`` (for callers that hold the
    number themselves, like the body counter and the image decoder)."""
    where = f"{subject}: " if subject else ""
    amount = f"{value} {unit}" if unit else str(value)
    return LimitExceeded(
        f"{where}{amount}, over the limit of {limit} (LATENTSPACE_LIMITS__{field.upper()})"
    )


def check(limits: LimitSettings, field: str, value: int, unit: str, subject: str = "") -> None:
    """Raise :class:`LimitExceeded` if ``value`` is over ``limits.<field>``."""
    limit = int(getattr(limits, field))
    if value > limit:
        raise over_limit(field, limit, value, unit, subject)


def check_batch(limits: LimitSettings, batch: Sized, unit: str) -> None:
    """At most ``max_batch`` items, texts, files, terms, documents or hashes in one request."""
    check(limits, "max_batch", len(batch), unit)


def check_k(limits: LimitSettings, k: int) -> None:
    """``1 <= k <= max_k``.

    Raises:
        InvalidInput: k below 1.
        LimitExceeded: k over ``max_k``.
    """
    if k < 1:
        raise InvalidInput(f"k must be at least 1, got {k}")
    check(limits, "max_k", k, "", "k")


def check_text(limits: LimitSettings, text: str, *, name: str = "text") -> str:
    """``text`` if it is not blank, valid Unicode and within ``max_text_chars``.

    Raises:
        InvalidInput: blank text, or a lone surrogate.
        LimitExceeded: longer than the limit.
    """
    if not text.strip():
        raise InvalidInput(f"{name} is empty")
    check(limits, "max_text_chars", len(text), "characters", name)
    return check_string(text, name=name)


def check_image_bytes(limits: LimitSettings, size: int, *, name: str = "image") -> None:
    """An encoded image of at most ``max_image_bytes``."""
    check(limits, "max_image_bytes", size, "bytes", name)


def check_string(value: str, *, name: str) -> str:
    """``value`` if every database can store it: valid Unicode (no lone surrogates) and no
    NUL character (PostgreSQL's text and JSON types cannot hold one).

    Raises:
        InvalidInput: a lone surrogate or a NUL, naming where it is.
    """
    if "\x00" in value:
        raise InvalidInput(f"{name}: contains a NUL character at position {value.index(chr(0))}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as e:
        raise InvalidInput(
            f"{name}: not valid Unicode (a lone surrogate {value[e.start]!r} at position "
            f"{e.start}); send UTF-8 text"
        ) from e
    return value


def check_id(value: str, *, name: str = "item id") -> str:
    """``value`` if it is a usable id: 1-256 characters, valid Unicode, no control
    character, no ``/`` (a path segment cannot hold one), not ``.`` or ``..`` (which URL
    clients resolve away). Spaces, ``%``, ``#`` and any other Unicode are fine; clients
    percent-encode them in URLs.

    Raises:
        InvalidInput: naming the rule broken.
    """
    if not 1 <= len(value) <= 256:
        raise InvalidInput(f"{name} must be 1-256 characters, got {len(value)}")
    check_string(value, name=name)
    if value in (".", ".."):
        raise InvalidInput(f"{name} {value!r} cannot be addressed in a URL")
    if "/" in value:
        raise InvalidInput(f"{name} {value!r} contains '/', which a URL path segment cannot hold")
    bad = next((c for c in value if ord(c) < 32 or 127 <= ord(c) < 160), None)
    if bad is not None:
        raise InvalidInput(f"{name} {value!r} contains the control character {bad!r}")
    return value


def id_from_path(path: str) -> str | None:
    """The item id a file path gives: the path with its folder separators written ``:``
    (an id cannot hold ``/``), without ``.`` segments or a leading ``/``; ``None`` when that
    is no usable id (see :func:`check_id`).

    >>> id_from_path("photos/2024/beach.jpg")
    'photos:2024:beach.jpg'
    """
    parts = [p for p in path.replace("\\", "/").split("/") if p not in ("", ".")]
    candidate = ":".join(parts)
    try:
        return check_id(candidate)
    except InvalidInput:
        return None


_INT64 = 2**63


def check_json(limits: LimitSettings, value: object, *, name: str) -> None:
    """A JSON value (metadata, a filter) every database can store and query.

    Finite numbers (integers within 64 bits), valid Unicode in keys and strings, at most
    ``max_json_depth`` levels of nesting and ``max_metadata_bytes`` once serialised.

    Raises:
        InvalidInput: NaN or infinity, a lone surrogate, an out-of-range integer, or a
            value JSON cannot hold — naming where it is.
        LimitExceeded: too deep, or too large.
    """
    if value == {}:  # most items' metadata: nothing to walk or measure
        return
    stack: list[tuple[object, str, int]] = [(value, name, 1)]
    while stack:
        item, where, depth = stack.pop()
        if isinstance(item, dict | list):
            check(limits, "max_json_depth", depth, "levels of nesting", name)
            if isinstance(item, dict):
                for key, child in item.items():
                    if not isinstance(key, str):
                        raise InvalidInput(f"{where}: keys must be strings, got {key!r}")
                    check_string(key, name=f"{where} key")
                    stack.append((child, f"{where}.{key}", depth + 1))
            else:
                stack.extend((child, f"{where}[{i}]", depth + 1) for i, child in enumerate(item))
        elif isinstance(item, str):
            check_string(item, name=where)
        elif isinstance(item, bool) or item is None:
            continue
        elif isinstance(item, int):
            if not -_INT64 <= item < _INT64:
                raise InvalidInput(f"{where}: {item} is outside the 64-bit integer range")
        elif isinstance(item, float):
            if not math.isfinite(item):
                raise InvalidInput(f"{where}: {item} is not a JSON number; use null or a number")
        else:
            raise InvalidInput(f"{where}: {type(item).__name__} is not a JSON value")
    size = len(json.dumps(value, ensure_ascii=False).encode())
    check(limits, "max_metadata_bytes", size, "bytes", name)
