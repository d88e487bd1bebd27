"""Exceptions raised by latentspace.

Every error the library raises on purpose derives from :class:`LatentspaceError`, so a
caller can catch one type. The HTTP layer maps each class to a status code and a stable
problem type in one place (``latentspace.api.errors``).

    LatentspaceError
    ├── InvalidInput            bad data from the caller (image, text, vector, spec, filter)
    │   ├── DimensionMismatch   a vector whose length is not the collection's dim
    │   └── LimitExceeded       over a configured limit (pixels, text length, batch size)
    ├── ModelMismatch           vectors from different encoders (fingerprints) would meet
    ├── NotFound                a named collection, item, direction or model that is not there
    ├── Conflict                the thing already exists, or the request clashes with state
    ├── EncoderError            an encoder could not be built or could not run
    │   ├── ModelUnavailable    weights not on this machine and not downloadable (offline)
    │   ├── ModelInvalid        the files a spec points at do not make a model
    │   └── UnsupportedModality e.g. an image given to a text-only encoder
    ├── VectorIndexError        the vector index failed or its files are damaged
    │   └── IndexCorrupted      an index file whose checksum or manifest disagrees
    ├── Unavailable             a collection that cannot serve now (its reason says why)
    └── StoreError              the SQL store failed
        ├── QueryTimeout        a statement ran past its deadline
        └── CorruptVector       a stored vector fails its checksum
"""

from __future__ import annotations

__all__ = [
    "Conflict",
    "CorruptVector",
    "DimensionMismatch",
    "DuplicateRejected",
    "EncoderError",
    "IndexCorrupted",
    "InvalidInput",
    "LatentspaceError",
    "LimitExceeded",
    "ModelInvalid",
    "ModelMismatch",
    "ModelUnavailable",
    "NotFound",
    "OverMemoryBudget",
    "QueryTimeout",
    "StoreError",
    "Unavailable",
    "UnsupportedModality",
    "VectorIndexError",
]


class LatentspaceError(Exception):
    """Base class of every error latentspace raises on purpose."""


class InvalidInput(LatentspaceError):
    """The caller's data is malformed or not acceptable."""


class DimensionMismatch(InvalidInput):
    """A vector's dimension differs from the one expected."""


class LimitExceeded(InvalidInput):
    """An input is over a configured limit."""


class ModelMismatch(LatentspaceError):
    """Vectors from two different encoders (fingerprints) would be compared."""


class NotFound(LatentspaceError):
    """A named object does not exist."""


class Conflict(LatentspaceError):
    """The object already exists or the request clashes with the current state."""


class DuplicateRejected(Conflict):
    """An ingested item duplicates another and ``on_duplicate`` rejects its tier."""


class EncoderError(LatentspaceError):
    """An encoder could not be built or failed while encoding."""


class ModelUnavailable(EncoderError):
    """Model weights are not available locally and cannot be downloaded."""


class ModelInvalid(EncoderError):
    """The files at a spec's location are there but do not make a model."""


class UnsupportedModality(EncoderError):
    """The encoder cannot embed this kind of input (e.g. images for a text model)."""


class VectorIndexError(LatentspaceError):
    """The vector index failed."""


class IndexCorrupted(VectorIndexError):
    """An index file or manifest failed verification."""


class Unavailable(LatentspaceError):
    """A collection cannot serve now (its index could not be opened or built)."""


class OverMemoryBudget(LatentspaceError):
    """An index would grow past the memory its process may give indexes (nothing written)."""


class StoreError(LatentspaceError):
    """The SQL store failed."""


class QueryTimeout(StoreError):
    """A SQL statement ran past its deadline (and was stopped)."""


class CorruptVector(StoreError):
    """A stored vector's bytes fail their checksum (it is never served)."""
