"""Browser-facing defences: Host allow-list, cross-site writes, security headers, key throttle.

- **Host** (DNS rebinding): a page on ``attacker.example`` that rebinds its name to
  127.0.0.1 sends ``Host: attacker.example``. When ``allowed_hosts`` is set, only those
  names are served; when it is not and the server listens on loopback or serves loopback
  clients without keys (``loopback_only``), only loopback names are. Refused: 400.
- **Cross-site writes** (CSRF): a browser adds no ``Authorization`` header on its own, so a
  state-changing request without one that a browser marks cross-site (``Sec-Fetch-Site``), or
  marks same-site (another port of localhost is that) from an ``Origin`` that is not this
  host, or whose ``Origin`` is not this host, is refused: 403.
- **Headers**: ``X-Content-Type-Options: nosniff`` everywhere; the page gets a CSP with no
  external source, ``frame-ancestors 'none'`` and no referrer.
- **Failed keys**: a client that presents wrong keys repeatedly is answered 429 with
  ``Retry-After`` for a while (:class:`FailedKeys`).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from latentspace.api.auth import is_loopback
from latentspace.api.errors import send_problem

__all__ = ["PAGE_CSP", "FailedKeys", "SecurityMiddleware"]

PAGE_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
_SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}
_NOSNIFF = [(b"x-content-type-options", b"nosniff")]


_READ = frozenset({b"host", b"authorization", b"origin", b"sec-fetch-site"})


def _headers(scope: Scope) -> dict[bytes, str]:
    # the headers this middleware reads, in one pass (ASGI names are lower-case); the
    # first of a repeated header counts
    found: dict[bytes, str] = {}
    for key, value in scope.get("headers", ()):
        if key in _READ and key not in found:
            found[key] = value.decode("latin-1")
    return found


def _hostname(host: str) -> str:
    # "name:port", "[::1]:port" or "::1" → the name without port or brackets
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host
    name, sep, port = host.rpartition(":")
    return name if sep and port.isdigit() and ":" not in name else host


class SecurityMiddleware:
    """The Host check, the cross-site write check and the security headers."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        allowed_hosts: list[str],
        loopback_only: bool,
        cors_origins: Sequence[str] = (),
    ) -> None:
        self.app = app
        self.allowed = {h.lower() for h in allowed_hosts}
        self.loopback_only = loopback_only
        self.trusted_origins = {o.rstrip("/").lower() for o in cors_origins}

    def _host_allowed(self, host: str) -> bool:
        name = _hostname(host).lower()
        if self.allowed:
            return "*" in self.allowed or name in self.allowed
        if self.loopback_only:
            return name == "localhost" or name.endswith(".localhost") or is_loopback(name)
        return True

    def _cross_site(self, scope: Scope, headers: dict[bytes, str], host: str) -> bool:
        if scope["method"] in _SAFE_METHODS or headers.get(b"authorization"):
            return False
        origin = headers.get(b"origin")
        if origin is not None and origin.rstrip("/").lower() in self.trusted_origins:
            return False  # configured for CORS: that origin may call
        fetch_site = headers.get(b"sec-fetch-site")
        if fetch_site == "cross-site":
            return True
        if fetch_site in ("same-origin", "none"):
            return False
        # same-site is not enough: a page on another port of localhost (a dev server, a
        # notebook) is same-site, so its Origin must be this very host
        if origin is None:
            return fetch_site is not None  # a browser that marks the request but hides why
        return origin == "null" or urlsplit(origin).netloc.lower() != host.lower()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = _headers(scope)
        host = headers.get(b"host", "")
        if not self._host_allowed(host):
            detail = (
                f"host {host!r} is not served here: a server on loopback answers loopback "
                "names only (LATENTSPACE_ALLOWED_HOSTS names others, as behind a proxy)"
                if self.loopback_only
                else f"host {host!r} is not served here (LATENTSPACE_ALLOWED_HOSTS)"
            )
            await send_problem(
                send, 400, "bad-request", detail, instance=scope["path"], headers=_NOSNIFF
            )
            return
        if self._cross_site(scope, headers, host):
            detail = (
                "a cross-site request may not change state without an API key "
                "(send Authorization: Bearer KEY)"
            )
            await send_problem(
                send, 403, "forbidden", detail, instance=scope["path"], headers=_NOSNIFF
            )
            return
        page = scope["path"] == "/" or scope["path"].startswith("/static/")

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers.append((b"x-content-type-options", b"nosniff"))
                if page:
                    headers.append((b"content-security-policy", PAGE_CSP.encode()))
                    headers.append((b"x-frame-options", b"DENY"))
                    headers.append((b"referrer-policy", b"no-referrer"))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, with_headers)


class FailedKeys:
    """Wrong keys per client: after ``limit`` within ``window`` seconds, wait it out.

    What waits is guessing, not the client's own work: a key that has already been
    accepted from that client (kept as its digest, a few per client) is still let through
    while the client waits, so a valid key is never locked out by wrong ones sent from the
    same address (a test suite's negative cases, another user behind the same NAT). Any
    other key is answered 429 unchecked, so the wait gives a guesser nothing to learn.
    Bounded (the oldest clients are forgotten past ``clients``) and thread-safe.
    """

    KNOWN_PER_CLIENT = 8

    def __init__(
        self,
        *,
        limit: int = 10,
        window: float = 60.0,
        clients: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit, self.window, self.clients, self._clock = limit, window, clients, clock
        self._failures: OrderedDict[str, list[float]] = OrderedDict()
        self._known: OrderedDict[str, OrderedDict[str, None]] = OrderedDict()
        self._lock = threading.Lock()

    def _recent(self, client: str, now: float) -> list[float]:
        times = [t for t in self._failures.get(client, []) if now - t < self.window]
        if not times:  # a client with no wrong key in the window is not kept
            self._failures.pop(client, None)
        return times

    def retry_after(self, client: str, digest: str) -> int | None:
        """Seconds ``client`` must wait before the key of ``digest`` is checked, or None."""
        now = self._clock()
        with self._lock:
            if client not in self._failures:  # the common case: no wrong key of late
                return None
            times = self._recent(client, now)
            if len(times) < self.limit or digest in self._known.get(client, ()):
                return None
            return max(1, int(self.window - (now - times[0])) + 1)

    def accepted(self, client: str, digest: str) -> None:
        """Record that ``client`` presented a valid key (by its digest)."""
        with self._lock:
            known = self._known.get(client)
            if known is not None and digest in known:
                return
            if known is None:
                known = self._known[client] = OrderedDict()
                while len(self._known) > self.clients:
                    self._known.popitem(last=False)
            known[digest] = None
            while len(known) > self.KNOWN_PER_CLIENT:
                known.popitem(last=False)

    def failed(self, client: str) -> None:
        """Record a wrong key from ``client``."""
        now = self._clock()
        with self._lock:
            self._failures[client] = [*self._recent(client, now), now]
            self._failures.move_to_end(client)
            while len(self._failures) > self.clients:
                self._failures.popitem(last=False)
