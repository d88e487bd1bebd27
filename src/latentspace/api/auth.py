"""API keys: bearer tokens, kept only as sha256 digests, each with a scope and a reach.

``LATENTSPACE_API_KEYS`` is a comma-separated list of ``[SCOPE[@COLLECTIONS]:]SECRET``:

- ``SCOPE`` is ``read`` (searches and reads), ``write`` (read, plus writing and deleting
  items and documents) or ``admin`` (everything); unprefixed keys are ``admin``.
- ``COLLECTIONS`` is a glob (``*``, ``?``, ``[...]``; no comma) over collection names:
  ``read@photos:S`` reads one collection, ``write@tenant-a-*:S`` writes a tenant's. Such a
  key sees only those collections, everywhere: any other collection answers 404 as if it
  did not exist. Without ``@`` a key reaches every collection.
- ``SECRET`` may be written as ``sha256:HEX`` so that the plain key never sits in a config
  file. The server hashes plain keys on start and compares digests in constant time.

With auth on and no keys configured, only loopback clients are served (a laptop default
that cannot leak onto a network); ``LATENTSPACE_AUTH=off`` turns checking off altogether.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import re
from dataclasses import dataclass
from fnmatch import fnmatchcase

from latentspace.errors import InvalidInput
from latentspace.settings import Settings

__all__ = ["FULL", "SCOPES", "Grant", "KeyRing", "hash_key", "is_loopback"]

SCOPES = ("read", "write", "admin")  # each includes the ones before it
# the characters of collection names, and the glob's own
_GLOB = re.compile(r"[A-Za-z0-9_.\-*?\[\]!]+")
# "word:" or "word@": a scope was meant (a secret with ':' is given as sha256:HEX)
_PREFIX = re.compile(r"([A-Za-z]+)(@[^:]*)?:(.*)", re.DOTALL)


@dataclass(frozen=True)
class Grant:
    """What one key may do (``scope``) and where (``collections``: a glob, or every one)."""

    scope: str
    collections: str | None = None

    @property
    def scoped(self) -> bool:
        """Whether the key reaches only some collections."""
        return self.collections is not None

    def allows(self, needed: str) -> bool:
        """Whether the scope includes ``needed`` (read, write or admin)."""
        return SCOPES.index(self.scope) >= SCOPES.index(needed)

    def covers(self, name: str) -> bool:
        """Whether collection ``name`` is within the key's reach."""
        return self.collections is None or fnmatchcase(name, self.collections)


FULL = Grant("admin")  # auth off, or a loopback client while no key exists


def hash_key(secret: str) -> str:
    """The sha256 hex digest under which a key is kept."""
    return hashlib.sha256(secret.encode()).hexdigest()


def is_loopback(host: str | None) -> bool:
    """Whether ``host`` is a loopback address or ``localhost``."""
    if not host:
        return False
    if host in ("localhost", "127.0.0.1", "::1"):  # the usual ones, without parsing
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _digest(secret: str) -> str:
    if secret.startswith("sha256:"):
        digest = secret.removeprefix("sha256:").lower()
        if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
            raise InvalidInput("an API key given as sha256: needs 64 hex digits")
        return digest
    if not secret:
        raise InvalidInput("an API key is empty")
    return hash_key(secret)


def parse_key(raw: str) -> tuple[str, Grant]:
    """One entry of ``LATENTSPACE_API_KEYS``: its digest and its grant.

    Raises:
        InvalidInput: an unknown scope, a bad collection glob, an empty key or a malformed
            digest.
    """
    found = _PREFIX.fullmatch(raw)
    if found is None and re.match(r"[A-Za-z]+@", raw):
        raise InvalidInput(f"API key {raw.partition('@')[0]}@…: a scoped key is SCOPE@GLOB:SECRET")
    if found is None or found.group(1) == "sha256":  # a bare secret: admin everywhere
        return _digest(raw), FULL
    scope, reach, secret = found.groups()
    if scope not in SCOPES:
        raise InvalidInput(
            f"API key scope {scope!r} is unknown: use read, write or admin (a secret that "
            "holds ':' is given as sha256:HEX)"
        )
    collections = None
    if reach is not None:
        collections = reach.removeprefix("@")
        if not _GLOB.fullmatch(collections):
            raise InvalidInput(
                f"API key reach {collections!r}: a collection name or glob (letters, digits, "
                "'_', '.', '-', and * ? [ ]), e.g. read@photos:KEY or write@tenant-a-*:KEY"
            )
    return _digest(secret), Grant(scope, collections)


@dataclass(frozen=True)
class KeyRing:
    """The configured keys (as digests) and whether checking is on."""

    grants: dict[str, Grant]  # digest -> what the key may do
    enabled: bool

    @classmethod
    def from_settings(cls, settings: Settings) -> KeyRing:
        """Parse ``settings.api_keys``.

        Raises:
            InvalidInput: as :func:`parse_key`.
        """
        grants: dict[str, Grant] = {}
        for raw in (part.strip() for part in settings.api_keys.split(",")):
            if raw:
                digest, grant = parse_key(raw)
                grants[digest] = grant
        return cls(grants, settings.auth == "on")

    @property
    def loopback_only(self) -> bool:
        """Auth is on but no key exists: serve loopback clients only."""
        return self.enabled and not self.grants

    def grant_of(self, token: str) -> Grant | None:
        """The grant of a presented key, or None if it is not one of ours."""
        return self.grant_of_digest(hash_key(token))

    def grant_of_digest(self, presented: str) -> Grant | None:
        """The grant of the key whose digest (:func:`hash_key`) is ``presented``, or None."""
        found = None
        for digest, grant in self.grants.items():  # no early exit: constant time per key
            if hmac.compare_digest(presented, digest):
                found = grant
        return found
