"""Objects in an S3-compatible store, for backups: :class:`ObjectStore` uploads, reads an
object's start, downloads, lists and deletes. boto3 is imported when one of these first
runs, so a server that never backs up never loads it.

Every failure comes out as the error the API maps to a status: no bucket or no object is
:class:`~latentspace.errors.NotFound` (404); refused credentials, a store that cannot be
reached or answers with an error of its own are :class:`~latentspace.errors.Unavailable`
(503), with the store's reason.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from latentspace.backup_settings import BackupSettings, S3Url
from latentspace.errors import InvalidInput, LatentspaceError, NotFound, Unavailable

__all__ = ["ObjectStore", "StoredObject"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

# The store's own codes for credentials it refuses or access it denies.
_REFUSED = frozenset(
    {
        "403",
        "AccessDenied",
        "AccountProblem",
        "AllAccessDisabled",
        "AuthorizationHeaderMalformed",
        "ExpiredToken",
        "InvalidAccessKeyId",
        "InvalidToken",
        "SignatureDoesNotMatch",
        "TokenRefreshRequired",
    }
)
_MISSING = frozenset({"404", "NoSuchKey", "NotFound"})
_CREDENTIALS = (
    "check LATENTSPACE_BACKUP__ACCESS_KEY_ID and LATENTSPACE_BACKUP__SECRET_ACCESS_KEY (or "
    "AWS's own credentials) and what they may do"
)


@dataclass(frozen=True)
class StoredObject:
    """An object found by :func:`listing`."""

    key: str
    size: int


def _client(settings: BackupSettings) -> Any:
    # A client per call: nothing of boto3 is kept between uses (or imported before one).
    import boto3
    from botocore.config import Config

    secret = settings.secret_access_key
    config = Config(
        connect_timeout=10,
        read_timeout=120,
        retries={"max_attempts": 3, "mode": "standard"},
        s3={"addressing_style": settings.addressing_style},
    )
    return boto3.session.Session().client(
        "s3",
        endpoint_url=settings.endpoint_url,
        region_name=settings.region,
        aws_access_key_id=settings.access_key_id,
        aws_secret_access_key=secret.get_secret_value() if secret is not None else None,
        config=config,
    )


def _where(settings: BackupSettings) -> str:
    return settings.endpoint_url or "AWS S3"


def _failure(settings: BackupSettings, url: S3Url, doing: str, e: Exception) -> LatentspaceError:
    from botocore.exceptions import (
        ClientError,
        ConnectionError,
        HTTPClientError,
        NoCredentialsError,
        PartialCredentialsError,
    )

    where = _where(settings)
    # upload_file wraps the store's answer in S3UploadFailedError; the answer is its context
    cause: BaseException | None = e
    while cause is not None and not isinstance(cause, ClientError):
        cause = cause.__cause__ or cause.__context__
    if isinstance(cause, ClientError):
        answer = cause.response.get("Error", {})
        code = str(answer.get("Code", "")) or "?"
        message = str(answer.get("Message", "")) or "no reason given"
        if code == "NoSuchBucket":
            return NotFound(f"no bucket {url.bucket!r} in the backup store ({where})")
        if code in _MISSING:
            return NotFound(f"no object {url} in the backup store ({where})")
        if code in _REFUSED:
            return Unavailable(
                f"the backup store ({where}) refused {doing} {url}: {code}: {message}; "
                f"{_CREDENTIALS}"
            )
        if code == "InvalidBucketName":
            return InvalidInput(f"{url}: the backup store ({where}) says: {message}")
        return Unavailable(f"the backup store ({where}) failed {doing} {url}: {code}: {message}")
    if isinstance(e, NoCredentialsError | PartialCredentialsError):
        return Unavailable(
            f"no credentials for the backup store ({where}): set LATENTSPACE_BACKUP__ACCESS_"
            "KEY_ID and LATENTSPACE_BACKUP__SECRET_ACCESS_KEY, or AWS's own "
            "(AWS_ACCESS_KEY_ID, ~/.aws/credentials, an instance role)"
        )
    if isinstance(e, ConnectionError | HTTPClientError):
        return Unavailable(f"cannot reach the backup store at {where}: {e}")
    return Unavailable(f"the backup store ({where}) failed {doing} {url}: {e}")


def _object_missing(settings: BackupSettings, url: S3Url, client: Any) -> NotFound:
    # An object's 404 does not say whether its bucket is there: ask (a refusal to say
    # leaves the object's message).
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        client.head_bucket(Bucket=url.bucket)
    except ClientError as e:
        if str(e.response.get("Error", {}).get("Code")) in ("404", "NoSuchBucket"):
            return NotFound(f"no bucket {url.bucket!r} in the backup store ({_where(settings)})")
    except BotoCoreError:
        pass
    return NotFound(f"no object {url} in the backup store ({_where(settings)})")


class ObjectStore:
    """The store the backup settings name, through one client (made at first use; boto3's
    clients are safe to share between threads)."""

    def __init__(self, settings: BackupSettings) -> None:
        self._settings = settings
        self._client: Any = None

    def _call(self, url: S3Url, doing: str, work: Callable[[Any], T]) -> T:
        # Runs ``work(client)``; a failure of the store becomes one of our errors.
        from boto3.exceptions import Boto3Error
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            if self._client is None:
                self._client = _client(self._settings)
            return work(self._client)
        except (Boto3Error, BotoCoreError, ClientError) as e:
            error = _failure(self._settings, url, doing, e)
            logger.warning("backup store: %s", error)
            raise error from e

    def upload(self, url: S3Url, file: Path) -> None:
        """Upload ``file`` as object ``url`` (multipart past 8 MiB; replaces one of that key).

        Raises:
            NotFound: no such bucket.
            Unavailable: refused credentials, the store unreachable or failing.
        """

        def work(client: Any) -> None:
            client.upload_file(
                str(file), url.bucket, url.key, ExtraArgs={"ContentType": "application/x-tar"}
            )

        self._call(url, "an upload to", work)

    def read_start(self, url: S3Url, length: int) -> tuple[bytes, int]:
        """The first ``length`` bytes of object ``url`` (all of it if shorter) and its size.

        Raises:
            NotFound: no such bucket or object.
            InvalidInput: the object is empty.
            Unavailable: as :meth:`upload`.
        """
        from botocore.exceptions import ClientError

        def work(client: Any) -> tuple[bytes, int]:
            try:
                answer = client.get_object(
                    Bucket=url.bucket, Key=url.key, Range=f"bytes=0-{length - 1}"
                )
            except ClientError as e:
                code = str(e.response.get("Error", {}).get("Code"))
                if code in _MISSING:
                    raise _object_missing(self._settings, url, client) from e
                if code == "InvalidRange":
                    raise InvalidInput(f"{url} is empty, not a snapshot") from e
                raise
            with answer["Body"] as body:
                data = bytes(body.read())
            span = str(answer.get("ContentRange") or "")  # "bytes 0-1023/4096"
            size = int(span.rpartition("/")[2]) if "/" in span else int(answer["ContentLength"])
            return data, size

        return self._call(url, "reading", work)

    def download(self, url: S3Url, out: Path) -> None:
        """Download object ``url`` into file ``out`` (ranged parts in parallel).

        Raises:
            NotFound: no such bucket or object.
            Unavailable: as :meth:`upload`, or ``out`` cannot be written.
        """

        def work(client: Any) -> None:
            try:
                client.download_file(url.bucket, url.key, str(out))
            except OSError as e:
                raise Unavailable(f"cannot write the download of {url}: {e}") from e

        self._call(url, "a download of", work)

    def listing(self, folder: S3Url) -> list[StoredObject]:
        """The objects directly in ``folder`` (not in folders below it), by key.

        Raises:
            NotFound: no such bucket.
            Unavailable: as :meth:`upload`.
        """

        def work(client: Any) -> list[StoredObject]:
            found = []
            pages = client.get_paginator("list_objects_v2").paginate(
                Bucket=folder.bucket, Prefix=folder.key, Delimiter="/"
            )
            for page in pages:
                for entry in page.get("Contents", []):
                    found.append(StoredObject(str(entry["Key"]), int(entry["Size"])))
            return sorted(found, key=lambda o: o.key)

        return self._call(folder, "listing", work)

    def delete(self, folder: S3Url, keys: list[str]) -> None:
        """Delete the objects ``keys`` of ``folder``'s bucket (1,000 a request).

        Raises:
            NotFound: no such bucket.
            Unavailable: as :meth:`upload`, or the store kept some of them.
        """

        def work(client: Any) -> None:
            for start in range(0, len(keys), 1000):
                batch = [{"Key": key} for key in keys[start : start + 1000]]
                answer = client.delete_objects(
                    Bucket=folder.bucket, Delete={"Objects": batch, "Quiet": True}
                )
                kept = answer.get("Errors") or []
                if kept:
                    first = kept[0]
                    raise Unavailable(
                        f"the backup store ({_where(self._settings)}) kept {len(kept)} "
                        f"object(s) of {folder} it was asked to delete: {first.get('Key')}: "
                        f"{first.get('Code')}: {first.get('Message')}"
                    )

        self._call(folder, "deleting in", work)
