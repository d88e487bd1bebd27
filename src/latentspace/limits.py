"""Every limit on what a caller may send, checked in one place with one message shape.

Each limit is a field of :class:`~latentspace.settings.LimitSettings`; going over one raises
:class:`~latentspace.errors.LimitExceeded` (HTTP 413) with the message
``"<subject>: <value> <unit>, over the limit of <limit> (LATENTSPACE_LIMITS__<FIELD>)"``,
so a client learns what was too large, by how much, and which setting moves the line.
The API states the same limits in its OpenAPI schema (``maximum``, ``maxItems``) from
:data:`STATED`.
"""

from __future__ import annotations

from collections.abc import Sized

from latentspace.errors import InvalidInput, LimitExceeded
from latentspace.settings import LimitSettings

__all__ = [
    "STATED",
    "check",
    "check_batch",
    "check_image_bytes",
    "check_k",
    "check_text",
    "over_limit",
]

# Request fields the OpenAPI schema annotates: (schema, property) → (limit field, keyword).
STATED: dict[tuple[str, str], tuple[str, str]] = {
    ("SearchRequest", "k"): ("max_k", "maximum"),
    ("CompositeQuery", "terms"): ("max_batch", "maxItems"),
    ("ItemsUpsert", "items"): ("max_batch", "maxItems"),
    ("DocumentsCreate", "documents"): ("max_batch", "maxItems"),
    ("HashLookup", "sha256"): ("max_batch", "maxItems"),
    ("PathRequest", "steps"): ("max_path_steps", "maximum"),
    ("ItemCreate", "text"): ("max_text_chars", "maxLength"),
    ("TermIn", "text"): ("max_text_chars", "maxLength"),
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
    """``text`` if it is not blank and within ``max_text_chars``.

    Raises:
        InvalidInput: blank text.
        LimitExceeded: longer than the limit.
    """
    if not text.strip():
        raise InvalidInput(f"{name} is empty")
    check(limits, "max_text_chars", len(text), "characters", name)
    return text


def check_image_bytes(limits: LimitSettings, size: int, *, name: str = "image") -> None:
    """An encoded image of at most ``max_image_bytes``."""
    check(limits, "max_image_bytes", size, "bytes", name)
