"""One client for the CLI: the HTTP API of a server (``--url``) or of the local data directory.

Locally the app runs in-process (its lifespan opens the data directory), so the CLI and a
remote server take the same requests and give the same answers; only the transport differs.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from latentspace.datadir import owner_of
from latentspace.errors import LatentspaceError
from latentspace.settings import Settings

__all__ = ["ApiClient", "ClientError", "open_client"]


class ClientError(LatentspaceError):
    """The API answered with a problem (or could not be reached)."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(f"{detail} (HTTP {status})" if status else detail)
        self.status = status


class ApiClient:
    """Thin calls on an httpx-style client that turn problem answers into :class:`ClientError`.

    ``http`` is an ``httpx.Client``, or Starlette's in-process ``TestClient`` (same API).
    """

    def __init__(self, http: Any, *, where: str) -> None:
        self.http = http
        self.where = where

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        """The JSON answer (``None`` for 204).

        Raises:
            ClientError: a 4xx/5xx answer (its problem ``detail``), or no connection.
        """
        try:
            response = self.http.request(method, path, **kwargs)
        except httpx.HTTPError as e:
            raise ClientError(0, f"cannot reach {self.where}: {e}") from e
        if response.status_code >= 400:
            self._raise(response)
        return response.json() if response.content else None

    def download(self, path: str, out: Path, **kwargs: Any) -> int:
        """POST to ``path`` and write the answer's body to ``out`` as it arrives; its bytes.

        Raises:
            ClientError: a problem answer (nothing is left at ``out``), or no connection.
        """
        partial = out.with_name(f".{out.name}.partial")
        if not out.parent.is_dir():
            raise ClientError(0, f"cannot write {out}: no folder {out.parent}")
        try:
            with self.http.stream("POST", path, **kwargs) as response:
                if response.status_code >= 400:
                    response.read()
                    self._raise(response)
                with partial.open("wb") as f:
                    for chunk in response.iter_bytes(1 << 20):
                        f.write(chunk)
            partial.replace(out)
        except httpx.HTTPError as e:
            raise ClientError(0, f"cannot reach {self.where}: {e}") from e
        except OSError as e:
            raise ClientError(0, f"cannot write {out}: {e.strerror or e}") from e
        finally:
            partial.unlink(missing_ok=True)
        return out.stat().st_size

    def _raise(self, response: Any) -> None:
        try:
            detail = response.json().get("detail", response.text)
        except ValueError:
            detail = response.text
        if response.status_code == 404 and str(detail).startswith("collection "):
            detail = f"{detail} in {self.where}"  # which data directory (or server) was asked
        raise ClientError(response.status_code, str(detail))

    def content(self, path: str) -> bytes | None:
        """Raw bytes of a GET (an image), or None when it is not there."""
        response = self.http.get(path)
        return response.content if response.status_code == 200 else None

    def ensure_collection(self, name: str, model: str | None) -> dict[str, Any]:
        """The collection, created with ``model`` when it does not exist yet.

        Raises:
            ClientError: it does not exist and no model was given.
        """
        try:
            found: dict[str, Any] = self.call("GET", f"/v1/collections/{name}")
            return found
        except ClientError as e:
            if e.status != 404 or model is None:
                raise
        created: dict[str, Any] = self.call(
            "POST", "/v1/collections", json={"name": name, "model": model}
        )
        return created


@contextmanager
def open_client(
    url: str | None, api_key: str | None, settings: Settings | None = None
) -> Iterator[ApiClient]:
    """A client of the server at ``url``, or of the local data directory when ``url`` is None.

    The local app trusts its caller (it is the user who owns the data directory), so it
    runs with auth off. When a server already holds the data directory the client talks to
    that server instead (a second process on the same directory would fork its indexes).

    Raises:
        ClientError: the data directory is held by a process that serves no URL.
    """
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    local = (settings or Settings()).model_copy(update={"auth": "off"})
    if not url:
        owner = owner_of(local.data_dir)
        if owner is not None and owner.url is None:
            raise ClientError(
                0,
                f"data directory {local.data_dir} is in use by process {owner.pid}, which "
                "serves no URL; stop it, or pass --url of the server that holds it",
            )
        url = owner.url if owner is not None else None
    if url:
        with httpx.Client(base_url=url.rstrip("/"), headers=headers, timeout=600) as http:
            yield ApiClient(http, where=url)
        return
    from starlette.testclient import TestClient

    from latentspace.api import create_app

    app = create_app(local, warm=False)  # torch is imported only if a command encodes
    with TestClient(app, raise_server_exceptions=False, client=("127.0.0.1", 0)) as http:
        yield ApiClient(http, where=str(Path(local.data_dir).resolve()))
