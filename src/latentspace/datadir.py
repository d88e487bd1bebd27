"""One process owns a data directory: an OS lock on ``data_dir/owner.lock``.

The index files of a data directory are written by the process that holds its indexes; a
second process on the same directory would hold a diverging copy (and save over the first
one's files). The owner takes an exclusive ``flock`` on the lock file for as long as it runs
(the OS drops it when the process dies, even by SIGKILL) and writes its pid and, when it
serves HTTP, its URL into the file, so a CLI command that finds the directory held can talk
to that server instead.

Replicas (``serve --workers N``, or ``LATENTSPACE_CLUSTER__REPLICA=true``) share the
directory: the first process to take the lock is the one that writes index files; the others
open the lock as ``shared``, read the files, keep up from the SQL oplog, and take the lock over
(:meth:`DataDirLock.try_promote`) when its holder is gone.
"""

from __future__ import annotations

import fcntl
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from latentspace.errors import Conflict

__all__ = ["LOCK_FILE", "DataDirLock", "Owner", "owner_of"]

LOCK_FILE = "owner.lock"


@dataclass(frozen=True)
class Owner:
    """The process holding a data directory, and the URL it serves at (if it does)."""

    pid: int
    url: str | None


def _read(handle: IO[str]) -> Owner | None:
    handle.seek(0)
    try:
        data = json.loads(handle.read() or "{}")
        return Owner(int(data["pid"]), data.get("url"))
    except (ValueError, KeyError, TypeError):
        return None


def owner_of(data_dir: Path) -> Owner | None:
    """Who holds ``data_dir`` now, or None when nobody does."""
    path = Path(data_dir) / LOCK_FILE
    if not path.is_file():
        return None
    with path.open("r") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _read(handle) or Owner(-1, None)
        fcntl.flock(handle, fcntl.LOCK_UN)
    return None


class DataDirLock:
    """The exclusive lock on a data directory, held until :meth:`release`.

    Args:
        url: where this process serves, written into the lock file for CLI commands.
        shared: when another process holds the lock, run beside it as a replica
            (``primary`` is False) instead of raising.

    Raises:
        Conflict: another process holds the directory (its pid and URL are named), and
            ``shared`` is not set.
    """

    def __init__(self, data_dir: Path, *, url: str | None = None, shared: bool = False) -> None:
        self.path = Path(data_dir) / LOCK_FILE
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._url = url
        handle = self.path.open("a+")
        self._handle: IO[str] | None = handle
        self.primary = False
        if self.try_promote() or shared:
            return
        owner = _read(handle)
        self.release()
        where = f" serving {owner.url}" if owner and owner.url else ""
        pid = f"process {owner.pid}" if owner else "another process"
        raise Conflict(
            f"data directory {self.path.parent} is in use by {pid}{where}; stop it, or "
            "point this one at it with --url (CLI) or another LATENTSPACE_DATA_DIR"
        )

    def try_promote(self) -> bool:
        """Take the exclusive lock if nobody holds it; whether this process holds it now."""
        if self.primary or self._handle is None:
            return self.primary
        try:
            fcntl.flock(self._handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        self._handle.seek(0)
        self._handle.truncate()
        self._handle.write(json.dumps({"pid": os.getpid(), "url": self._url}))
        self._handle.flush()
        self.primary = True
        return True

    def release(self) -> None:
        """Give the directory up (idempotent)."""
        if self._handle is not None:
            if self.primary:
                self._handle.seek(0)
                self._handle.truncate()
                fcntl.flock(self._handle, fcntl.LOCK_UN)
            self._handle.close()
            self._handle = None
            self.primary = False
