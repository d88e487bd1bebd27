"""The HTTP calls every integration makes, sync (``Remote``) and async (``AsyncRemote``).

One method per server operation, with the same names and arguments on both, so a framework
class writes its logic once and picks the transport. Problems come back as
:class:`~latentspace.client.ClientError` carrying the status and the server's ``detail``.
"""

from __future__ import annotations

import weakref
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any
from urllib.parse import quote

import httpx

from latentspace.client import ClientError

__all__ = ["UPSERT_BATCH", "AsyncRemote", "Remote", "failures"]

UPSERT_BATCH = 256  # items a request: well under the server's batch and body limits
_PAGE = 500  # items a scroll page
_IDS = 1000  # ids a get or delete request


def _headers(api_key: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"} if api_key else {}


def _answer(response: httpx.Response, where: str) -> Any:
    if response.status_code >= 400:
        try:
            detail = response.json().get("detail", response.text)
        except ValueError:
            detail = response.text
        raise ClientError(response.status_code, f"{where}: {detail}")
    return response.json() if response.content else None


def failures(answer: dict[str, Any]) -> str | None:
    """What went wrong with the items of an upsert answer (None: every item was written)."""
    failed = [i for i in answer.get("items", []) if i.get("status") == "error"]
    if not failed:
        return None
    first = failed[0]
    detail = (first.get("error") or {}).get("detail", "failed")
    return f"{len(failed)} item(s) not written; item {first.get('id')!r}: {detail}"


def _collection_body(name: str, model: str | None, dim: int | None, metric: str) -> dict[str, Any]:
    if (model is None) == (dim is None):
        raise ValueError("give exactly one of model (the server embeds) or dim (raw vectors)")
    body: dict[str, Any] = {"name": name, "metric": metric}
    body.update({"model": model} if model is not None else {"dim": dim})
    return body


def _chunks(ids: Sequence[str]) -> list[list[str]]:
    # ids a request: the server takes at most ``max_batch`` (1,024 by default)
    return [list(ids[i : i + _IDS]) for i in range(0, len(ids), _IDS)]


def _path(name: str, tail: str = "") -> str:
    return f"/v1/collections/{quote(name, safe='')}{tail}"


class Remote:
    """A latentspace server at ``url`` (``api_key``: a read key to search, an admin key to
    write), over one pooled ``httpx.Client``."""

    def __init__(self, url: str, api_key: str | None = None, timeout: float = 60.0) -> None:
        self.url = url.rstrip("/")
        self.http = httpx.Client(base_url=self.url, headers=_headers(api_key), timeout=timeout)
        # a store object owns its pool: the sockets close when it is collected
        self._closer = weakref.finalize(self, self.http.close)

    def close(self) -> None:
        """Close the connection pool."""
        self._closer()

    def call(self, method: str, path: str, json: Any = None) -> Any:
        """The JSON answer of one request (None for an empty body).

        Raises:
            ClientError: a problem answer (its status and detail), or no connection (status 0).
        """
        try:
            response = self.http.request(method, path, json=json)
        except httpx.HTTPError as e:
            raise ClientError(0, f"cannot reach {self.url}: {e}") from e
        return _answer(response, f"{method} {path}")

    def collection(self, name: str) -> dict[str, Any] | None:
        """The collection's description, or None when it does not exist."""
        try:
            found: dict[str, Any] = self.call("GET", _path(name))
        except ClientError as e:
            if e.status == 404:
                return None
            raise
        return found

    def ensure_collection(
        self, name: str, *, model: str | None = None, dim: int | None = None, metric: str = "cosine"
    ) -> dict[str, Any]:
        """The collection, created (of ``model``'s space, or raw vectors of ``dim``) if absent.

        Raises:
            ClientError: it could not be created (a bad name or model; 409 on a race is
                answered by reading the winner's).
        """
        found = self.collection(name)
        if found is not None:
            return found
        try:
            created: dict[str, Any] = self.call(
                "POST", "/v1/collections", json=_collection_body(name, model, dim, metric)
            )
        except ClientError as e:
            if e.status != 409:
                raise
            return self.call("GET", _path(name))  # type: ignore[no-any-return]
        return created

    def drop(self, name: str) -> None:
        """Delete the collection (nothing when it does not exist)."""
        try:
            self.call("DELETE", _path(name))
        except ClientError as e:
            if e.status != 404:
                raise

    def upsert(self, name: str, items: Sequence[dict[str, Any]]) -> int:
        """Write ``items`` (API item objects) in batches; how many were written.

        Raises:
            ClientError: a batch was refused, or some of its items were not written.
        """
        for start in range(0, len(items), UPSERT_BATCH):
            answer = self.call(
                "POST", _path(name, "/items"), json={"items": items[start : start + UPSERT_BATCH]}
            )
            if (failed := failures(answer)) is not None:
                raise ClientError(422, failed)
        return len(items)

    def get(
        self, name: str, ids: Sequence[str], include_vector: bool = False
    ) -> list[dict[str, Any]]:
        """The stored items among ``ids``, in their order (missing ones left out)."""
        found: list[dict[str, Any]] = []
        for chunk in _chunks(ids):
            body = {"ids": chunk, "include_vector": include_vector}
            found += self.call("POST", _path(name, "/items:get"), json=body)["items"]
        return found

    def delete(
        self, name: str, ids: Sequence[str] | None = None, filter: dict[str, Any] | None = None
    ) -> int:
        """Delete the items of ``ids`` or those matching ``filter``; how many were live."""
        bodies = [{"ids": c} for c in _chunks(ids)] if ids is not None else [{"filter": filter}]
        path = _path(name, "/items:delete")
        return sum(int(self.call("POST", path, json=body)["deleted"]) for body in bodies)

    def scroll(
        self, name: str, filter: dict[str, Any] | None = None, include_vector: bool = False
    ) -> Iterator[dict[str, Any]]:
        """Every live item (matching ``filter``), page by page."""
        after: int | None = 0
        while after is not None:
            body = {
                "filter": filter,
                "limit": _PAGE,
                "after": after,
                "include_vector": include_vector,
            }
            page = self.call("POST", _path(name, "/items:scroll"), json=body)
            yield from page["items"]
            after = page["next"]

    def count(self, name: str, filter: dict[str, Any] | None = None) -> int:
        """Live items (matching ``filter``)."""
        return int(self.call("POST", _path(name, "/items:count"), json={"filter": filter})["count"])

    def search(self, name: str, body: dict[str, Any]) -> list[dict[str, Any]]:
        """The hits of a search body (see the search route), best first."""
        return self.call("POST", _path(name, "/search"), json=body)["results"]  # type: ignore[no-any-return]


class AsyncRemote:
    """:class:`Remote` over ``httpx.AsyncClient``: the same methods, awaited."""

    def __init__(self, url: str, api_key: str | None = None, timeout: float = 60.0) -> None:
        self.url = url.rstrip("/")
        self.http = httpx.AsyncClient(base_url=self.url, headers=_headers(api_key), timeout=timeout)

    async def close(self) -> None:
        """Close the connection pool."""
        await self.http.aclose()

    async def call(self, method: str, path: str, json: Any = None) -> Any:
        """See :meth:`Remote.call`."""
        try:
            response = await self.http.request(method, path, json=json)
        except httpx.HTTPError as e:
            raise ClientError(0, f"cannot reach {self.url}: {e}") from e
        return _answer(response, f"{method} {path}")

    async def collection(self, name: str) -> dict[str, Any] | None:
        """See :meth:`Remote.collection`."""
        try:
            found: dict[str, Any] = await self.call("GET", _path(name))
        except ClientError as e:
            if e.status == 404:
                return None
            raise
        return found

    async def ensure_collection(
        self, name: str, *, model: str | None = None, dim: int | None = None, metric: str = "cosine"
    ) -> dict[str, Any]:
        """See :meth:`Remote.ensure_collection`."""
        found = await self.collection(name)
        if found is not None:
            return found
        try:
            created: dict[str, Any] = await self.call(
                "POST", "/v1/collections", json=_collection_body(name, model, dim, metric)
            )
        except ClientError as e:
            if e.status != 409:
                raise
            return await self.call("GET", _path(name))  # type: ignore[no-any-return]
        return created

    async def drop(self, name: str) -> None:
        """See :meth:`Remote.drop`."""
        try:
            await self.call("DELETE", _path(name))
        except ClientError as e:
            if e.status != 404:
                raise

    async def upsert(self, name: str, items: Sequence[dict[str, Any]]) -> int:
        """See :meth:`Remote.upsert`."""
        for start in range(0, len(items), UPSERT_BATCH):
            answer = await self.call(
                "POST", _path(name, "/items"), json={"items": items[start : start + UPSERT_BATCH]}
            )
            if (failed := failures(answer)) is not None:
                raise ClientError(422, failed)
        return len(items)

    async def get(
        self, name: str, ids: Sequence[str], include_vector: bool = False
    ) -> list[dict[str, Any]]:
        """See :meth:`Remote.get`."""
        found: list[dict[str, Any]] = []
        for chunk in _chunks(ids):
            body = {"ids": chunk, "include_vector": include_vector}
            found += (await self.call("POST", _path(name, "/items:get"), json=body))["items"]
        return found

    async def delete(
        self, name: str, ids: Sequence[str] | None = None, filter: dict[str, Any] | None = None
    ) -> int:
        """See :meth:`Remote.delete`."""
        bodies = [{"ids": c} for c in _chunks(ids)] if ids is not None else [{"filter": filter}]
        deleted = 0
        for body in bodies:
            deleted += int(
                (await self.call("POST", _path(name, "/items:delete"), json=body))["deleted"]
            )
        return deleted

    async def scroll(
        self, name: str, filter: dict[str, Any] | None = None, include_vector: bool = False
    ) -> AsyncIterator[dict[str, Any]]:
        """See :meth:`Remote.scroll`."""
        after: int | None = 0
        while after is not None:
            body = {
                "filter": filter,
                "limit": _PAGE,
                "after": after,
                "include_vector": include_vector,
            }
            page = await self.call("POST", _path(name, "/items:scroll"), json=body)
            for item in page["items"]:
                yield item
            after = page["next"]

    async def count(self, name: str, filter: dict[str, Any] | None = None) -> int:
        """See :meth:`Remote.count`."""
        answer = await self.call("POST", _path(name, "/items:count"), json={"filter": filter})
        return int(answer["count"])

    async def search(self, name: str, body: dict[str, Any]) -> list[dict[str, Any]]:
        """See :meth:`Remote.search`."""
        answer = await self.call("POST", _path(name, "/search"), json=body)
        return answer["results"]  # type: ignore[no-any-return]
