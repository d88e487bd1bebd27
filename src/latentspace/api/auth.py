"""API keys: bearer tokens, kept only as sha256 digests, with read and admin scopes.

``LATENTSPACE_API_KEYS`` is a comma-separated list of ``[read:|admin:]SECRET`` (admin when
unprefixed). SECRET may be written as ``sha256:HEX`` so that the plain key never sits in a
config file. The server hashes plain keys on start and compares digests in constant time.

With auth on and no keys configured, only loopback clients are served (a laptop default
that cannot leak onto a network); ``LATENTSPACE_AUTH=off`` turns checking off altogether.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
from dataclasses import dataclass

from latentspace.errors import InvalidInput
from latentspace.settings import Settings

__all__ = ["SCOPES", "KeyRing", "hash_key", "is_loopback"]

SCOPES = ("read", "admin")


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


@dataclass(frozen=True)
class KeyRing:
    """The configured keys (as digests) and whether checking is on."""

    digests: dict[str, str]  # digest -> scope
    enabled: bool

    @classmethod
    def from_settings(cls, settings: Settings) -> KeyRing:
        """Parse ``settings.api_keys``.

        Raises:
            InvalidInput: an unknown scope, an empty key or a malformed digest.
        """
        digests: dict[str, str] = {}
        for raw in (part.strip() for part in settings.api_keys.split(",")):
            if not raw:
                continue
            scope, sep, secret = raw.partition(":")
            if not sep or scope not in SCOPES:
                scope, secret = "admin", raw
            if secret.startswith("sha256:"):
                digest = secret.removeprefix("sha256:").lower()
                if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
                    raise InvalidInput("an API key given as sha256: needs 64 hex digits")
            elif secret:
                digest = hash_key(secret)
            else:
                raise InvalidInput("an API key is empty")
            digests[digest] = scope
        return cls(digests, settings.auth == "on")

    @property
    def loopback_only(self) -> bool:
        """Auth is on but no key exists: serve loopback clients only."""
        return self.enabled and not self.digests

    def scope_of(self, token: str) -> str | None:
        """The scope of a presented key, or None if it is not one of ours."""
        return self.scope_of_digest(hash_key(token))

    def scope_of_digest(self, presented: str) -> str | None:
        """The scope of the key whose digest (:func:`hash_key`) is ``presented``, or None."""
        found = None
        for digest, scope in self.digests.items():  # no early exit: constant time per key
            if hmac.compare_digest(presented, digest):
                found = scope
        return found
