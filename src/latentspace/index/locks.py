"""A readers–writer lock: searches run in parallel, a write waits for them and runs alone;
and a lock per key (per collection), made on first use."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["KeyedLocks", "ReadWriteLock"]


class KeyedLocks:
    """One ``threading.Lock`` per key, made when first asked for (thread-safe)."""

    def __init__(self) -> None:
        self._locks: dict[int, threading.Lock] = {}
        self._guard = threading.Lock()

    def of(self, key: int) -> threading.Lock:
        """The key's lock (made now if it has none)."""
        with self._guard:
            return self._locks.setdefault(key, threading.Lock())

    def held(self, key: int) -> bool:
        """Whether the key's lock is held now (a hint: it may change at once)."""
        lock = self._locks.get(key)
        return lock is not None and lock.locked()

    def forget(self, key: int) -> None:
        """Drop the key's lock (its collection is gone)."""
        with self._guard:
            self._locks.pop(key, None)


class ReadWriteLock:
    """Many readers or one writer; a waiting writer blocks new readers (no writer starvation)."""

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._readers = 0
        self._writer = False
        self._writers_waiting = 0
        self._read_guard = _ReadGuard(self)

    def read(self) -> _ReadGuard:
        """Hold the lock shared (a context manager)."""
        return self._read_guard

    def acquire_read(self) -> None:
        """Take a shared hold; pair with :meth:`release_read`."""
        with self._cond:
            while self._writer or self._writers_waiting:
                self._cond.wait()
            self._readers += 1

    def release_read(self) -> None:
        """Drop a shared hold."""
        with self._cond:
            self._readers -= 1
            if self._readers == 0:
                self._cond.notify_all()

    @contextmanager
    def write(self) -> Iterator[None]:
        """Hold the lock exclusively."""
        with self._cond:
            self._writers_waiting += 1
            while self._writer or self._readers:
                self._cond.wait()
            self._writers_waiting -= 1
            self._writer = True
        try:
            yield
        finally:
            with self._cond:
                self._writer = False
                self._cond.notify_all()


class _ReadGuard:
    """``with lock.read():`` without a generator per call (searches take it per query)."""

    __slots__ = ("_lock",)

    def __init__(self, lock: ReadWriteLock) -> None:
        self._lock = lock

    def __enter__(self) -> None:
        self._lock.acquire_read()

    def __exit__(self, *_: object) -> None:
        self._lock.release_read()
