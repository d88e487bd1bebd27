"""Backups to S3-compatible storage: their settings, and the two small grammars they read.

    S3Url           ``s3://bucket/key``, checked once (bucket name, key segments) and kept parsed
    Schedule        ``30m`` / ``6h`` / ``1d`` (an interval) or ``daily@02:30`` (a time of day,
                    UTC), with :meth:`Schedule.due`
    BackupSettings  ``LATENTSPACE_BACKUP__*``: the store's endpoint, region and credentials (or
                    boto3's own chain when unset), the schedule, where it writes, how many
                    backups of each collection it keeps

Nothing here talks to a store (``latentspace.store.s3`` does); :class:`~latentspace.settings.
Settings` holds a :class:`BackupSettings` as ``backup``.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator

from latentspace.errors import InvalidInput

__all__ = ["BackupSettings", "S3Url", "Schedule", "parse_s3_url"]

_SCHEME = "s3://"
_OTHER_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
# S3's bucket rules: 3-63 lowercase letters, digits, '.' and '-', a letter or digit at each end.
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_KEY_BYTES = 1024
_INTERVAL = re.compile(r"(\d{1,6})([mhd])")
_DAILY = re.compile(r"daily@([01]\d|2[0-3]):([0-5]\d)")
_UNITS = {"m": timedelta(minutes=1), "h": timedelta(hours=1), "d": timedelta(days=1)}
_LONGEST = timedelta(days=366)
_GRAMMAR = "an interval (30m, 6h, 1d) or a daily UTC time (daily@02:30)"


@dataclass(frozen=True)
class S3Url:
    """An object (or, with a key ending in ``/`` or empty, a folder) in a bucket."""

    bucket: str
    key: str

    def __str__(self) -> str:
        return f"{_SCHEME}{self.bucket}/{self.key}"

    def child(self, name: str) -> S3Url:
        """The object (or folder) ``name`` inside this folder."""
        return S3Url(self.bucket, self.key + name)


def parse_s3_url(value: str, *, folder: bool = False) -> S3Url:
    """``s3://bucket/key`` parsed; with ``folder`` a prefix (may be empty; ends in ``/``).

    Raises:
        InvalidInput: another scheme, no bucket or a bad bucket name, no key (for an
            object), or a key with an empty, ``.`` or ``..`` segment or a control character.
    """
    shown = value if len(value) <= 200 else f"{value[:197]}..."
    if not value.startswith(_SCHEME):
        other = _OTHER_SCHEME.match(value)
        if other is not None:
            raise InvalidInput(f"{shown!r}: only s3:// URLs are supported, not {other[1]}://")
        raise InvalidInput(f"{shown!r} is not an s3:// URL (s3://bucket/key)")
    bucket, _, key = value[len(_SCHEME) :].partition("/")
    if not bucket:
        raise InvalidInput(f"{shown!r} names no bucket (s3://bucket/key)")
    if not _BUCKET.fullmatch(bucket) or ".." in bucket or _is_address(bucket):
        raise InvalidInput(
            f"{shown!r}: {bucket!r} is not a bucket name (3-63 lowercase letters, digits, '.' "
            "or '-', a letter or digit at each end)"
        )
    if folder and key and not key.endswith("/"):
        key += "/"
    if not key and not folder:
        raise InvalidInput(f"{shown!r} names no object: give a key after the bucket")
    if not folder and key.endswith("/"):
        raise InvalidInput(f"{shown!r} names a folder, not an object (its key ends with '/')")
    segments = key.split("/")[:-1] if folder else key.split("/")
    if key and any(part in ("", ".", "..") for part in segments):
        raise InvalidInput(f"{shown!r}: a key may not have empty, '.' or '..' segments")
    if any(ord(c) < 32 or ord(c) == 127 or c == "\\" for c in key):
        raise InvalidInput(f"{shown!r}: a key may not hold control characters or '\\'")
    if len(key.encode()) > _KEY_BYTES:
        raise InvalidInput(f"{shown!r}: a key is at most {_KEY_BYTES} bytes")
    return S3Url(bucket, key)


def _is_address(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class Schedule:
    """Every ``every`` (an interval), or each day at ``at`` (UTC)."""

    every: timedelta | None = None
    at: time | None = None

    @classmethod
    def parse(cls, text: str) -> Schedule:
        """A schedule from ``30m``, ``6h``, ``1d`` or ``daily@HH:MM``.

        Raises:
            ValueError: anything else, or an interval under a minute or over 366 days.
        """
        value = text.strip()
        interval, daily = _INTERVAL.fullmatch(value), _DAILY.fullmatch(value)
        if interval is not None:
            every = int(interval[1]) * _UNITS[interval[2]]
            if not timedelta(minutes=1) <= every <= _LONGEST:
                raise ValueError(f"{text!r}: an interval is 1m to 366d")
            return cls(every=every)
        if daily is not None:
            return cls(at=time(int(daily[1]), int(daily[2])))
        raise ValueError(f"{text!r} is not a schedule: write {_GRAMMAR}")

    def due(self, last: datetime | None, now: datetime) -> bool:
        """Whether a run is due at ``now`` when the last one was at ``last`` (None: never,
        which is due at once). Both are timezone-aware."""
        if last is None:
            return True
        if self.every is not None:
            return now - last >= self.every
        assert self.at is not None
        slot = now.replace(hour=self.at.hour, minute=self.at.minute, second=0, microsecond=0)
        if slot > now:
            slot -= timedelta(days=1)
        return last < slot


class BackupSettings(BaseModel):
    """Backups to S3-compatible storage: the store, and the schedule (off when unset)."""

    endpoint_url: str | None = Field(
        default=None,
        description="The store's URL (MinIO, Ceph, R2, ...: `http://host:9000`); unset: AWS "
        "S3 (or AWS_ENDPOINT_URL).",
    )
    region: str | None = Field(
        default=None, description="The region to sign for; unset: boto3's (AWS_REGION, config)."
    )
    access_key_id: str | None = Field(
        default=None,
        description="With secret_access_key; unset: boto3's chain (AWS_ACCESS_KEY_ID, "
        "~/.aws/credentials, an instance role).",
    )
    secret_access_key: SecretStr | None = Field(default=None, description="See access_key_id.")
    addressing_style: Literal["auto", "path", "virtual"] = Field(
        default="auto",
        description="Bucket in the path (`path`, what most self-hosted stores want) or in the "
        "host name (`virtual`); auto: boto3's choice.",
    )
    schedule: str | None = Field(
        default=None, description=f"When to back up every collection: {_GRAMMAR}; unset: never."
    )
    target: str | None = Field(
        default=None,
        description="`s3://bucket/prefix/` under which each scheduled run writes "
        "`<collection>/<UTC timestamp>.lsnap`.",
    )
    keep: int = Field(
        default=7,
        ge=1,
        le=100_000,
        description="Scheduled backups kept per collection; older ones are deleted after each run.",
    )

    @field_validator(
        "endpoint_url",
        "region",
        "access_key_id",
        "secret_access_key",
        "schedule",
        "target",
        mode="before",
    )
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("endpoint_url")
    @classmethod
    def _endpoint(cls, value: str | None) -> str | None:
        if value is not None:
            parts = urlsplit(value)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError(f"{value!r} is not an http:// or https:// URL")
        return value

    @field_validator("schedule")
    @classmethod
    def _schedule(cls, value: str | None) -> str | None:
        if value is not None:
            Schedule.parse(value)
        return value

    @field_validator("target")
    @classmethod
    def _target(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                parse_s3_url(value, folder=True)
            except InvalidInput as e:
                raise ValueError(str(e)) from None
        return value

    @model_validator(mode="after")
    def _complete(self) -> BackupSettings:
        if (self.access_key_id is None) != (self.secret_access_key is None):
            raise ValueError(
                "set both LATENTSPACE_BACKUP__ACCESS_KEY_ID and LATENTSPACE_BACKUP__SECRET_"
                "ACCESS_KEY, or neither (boto3's own chain then finds the credentials)"
            )
        if self.schedule is not None and self.target is None:
            raise ValueError(
                "LATENTSPACE_BACKUP__SCHEDULE needs LATENTSPACE_BACKUP__TARGET: the "
                "s3://bucket/prefix/ the backups go to"
            )
        return self

    def planned(self) -> tuple[Schedule, S3Url] | None:
        """The schedule and the folder its backups go to; None when none is set."""
        if self.schedule is None or self.target is None:
            return None
        return Schedule.parse(self.schedule), parse_s3_url(self.target, folder=True)
