"""The background job runner: jobs are rows in SQL, run by a small pool of worker threads.

Jobs of different collections run side by side (a long map fit of one collection does not
hold up another's migration); the jobs of one collection run one at a time, oldest first.

A job's row holds its parameters and its progress (``done``, ``total`` and ``cursor``, the
last item id finished). A handler does its work in batches and writes each batch's
progress in the batch's own transaction, so what the row says is exactly what is done;
after a crash, or a stop mid-job (which puts the job back to ``queued``), the next start
resumes every queued or running job from its cursor. A cancel changes the row at once and
the handler stops before its next batch.
"""

from __future__ import annotations

import logging
import queue
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy.orm import Session, sessionmaker

from latentspace.errors import LatentspaceError
from latentspace.store import jobs as jobs_repo
from latentspace.store.tables import JobRow
from latentspace.types import JobState

__all__ = ["ClaimedJob", "JobHandler", "JobOutcome", "JobRunner", "public"]

logger = logging.getLogger(__name__)

# done: the handler finished the work; stopped: it returned early because it was asked to
# (a stop or a cancel) or because its row is no longer running.
JobOutcome = Literal["done", "stopped"]


@dataclass(frozen=True)
class ClaimedJob:
    """A job the worker has marked running: what its handler starts from."""

    id: int
    collection_id: int
    kind: str
    params: dict[str, Any]
    done: int
    total: int
    cursor: int

    @classmethod
    def of(cls, row: JobRow) -> ClaimedJob:
        """The job of a row."""
        return cls(
            row.id, row.collection_id, row.kind, dict(row.params), row.done, row.total, row.cursor
        )


# An absolute path's folders: a job's error is shown to read keys, which need not learn
# where the server keeps its files (the log keeps the whole message).
_FOLDERS = re.compile(r"(?<![\w.~])/(?:[^\s'\"/]+/)+")


def public(message: str) -> str:
    """A job's error as clients see it: absolute paths cut to their last part."""
    return _FOLDERS.sub("…/", message)


# A handler runs one job: it takes the job and a callable that says whether to stop now
# (asked between batches), and returns how it ended. An exception fails the job.
JobHandler = Callable[[ClaimedJob, Callable[[], bool]], JobOutcome]


class JobRunner:
    """Runs queued jobs, oldest first, on ``workers`` threads (started by :meth:`start`);
    one collection's jobs one at a time."""

    def __init__(
        self, sessions: sessionmaker[Session], *, stop_timeout: float = 60.0, workers: int = 2
    ) -> None:
        self._sessions = sessions
        self._stop_timeout = stop_timeout
        self._workers = max(1, workers)
        self._handlers: dict[str, JobHandler] = {}
        self._queue: queue.Queue[int | None] = queue.Queue()
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._dispatch = threading.Lock()
        self._cancelled: set[int] = set()
        self._busy: set[int] = set()  # collections with a job running
        self._waiting: dict[int, deque[int]] = {}  # their next jobs, oldest first
        self._threads: list[threading.Thread] = []

    @property
    def running(self) -> bool:
        """Whether a worker thread is alive."""
        return any(t.is_alive() for t in self._threads)

    def start(self, handlers: Mapping[str, JobHandler], *, resume: bool = True) -> list[int]:
        """Start the workers with a handler per job kind; the unfinished jobs it resumes
        (none unless ``resume``: a replica leaves them to the data directory's holder,
        which may be running them)."""
        if self._threads:
            raise RuntimeError("the job runner was already started (it runs once)")
        self._handlers = dict(handlers)
        resumed = []
        with self._sessions() as session:
            if resume:
                resumed = jobs_repo.unfinished_jobs(session=session)
        for job_id in resumed:
            self._queue.put(job_id)
        if resumed:
            logger.info("resuming %d unfinished job(s): %s", len(resumed), resumed)
        for n in range(self._workers):
            thread = threading.Thread(target=self._work, name=f"latentspace-jobs-{n}", daemon=True)
            self._threads.append(thread)
            thread.start()
        return resumed

    def submit(self, job_id: int) -> None:
        """Queue a committed job (it runs once a worker is free and its collection's
        earlier jobs are done)."""
        self._queue.put(job_id)

    def cancelled(self, job_id: int) -> None:
        """Tell a running job that its row was cancelled, so it stops before its next batch."""
        with self._lock:
            self._cancelled.add(job_id)

    def stop(self) -> None:
        """Stop the workers: a job in progress finishes its batch and goes back to queued.

        Waits up to ``stop_timeout`` seconds for the threads (daemons: past that, the
        process may still exit).
        """
        alive = [t for t in self._threads if t.is_alive()]
        if not alive:
            return
        self._stopping.set()
        for _ in self._threads:
            self._queue.put(None)
        deadline = time.monotonic() + self._stop_timeout
        for thread in alive:
            thread.join(max(0.0, deadline - time.monotonic()))
        if any(t.is_alive() for t in alive):
            logger.warning("the job workers did not stop within %.0f s", self._stop_timeout)

    def _should_stop(self, job_id: int) -> bool:
        with self._lock:
            return self._stopping.is_set() or job_id in self._cancelled

    def _work(self) -> None:
        while True:
            with self._dispatch:  # one worker takes the next job at a time: oldest first
                job_id = self._queue.get()
                if job_id is None or self._stopping.is_set():
                    return  # jobs still queued stay queued in SQL: the next start resumes them
                collection = self._collection_of(job_id)
                with self._lock:
                    if collection in self._busy:  # its collection's running job goes first
                        self._waiting.setdefault(collection, deque()).append(job_id)
                        continue
                    self._busy.add(collection)
            while job_id is not None:  # this job, then the ones of its collection that wait
                self._run_safely(job_id)
                with self._lock:
                    waiting = self._waiting.get(collection)
                    job_id = waiting.popleft() if waiting and not self._stopping.is_set() else None
                    if job_id is None:
                        self._busy.discard(collection)

    def _collection_of(self, job_id: int) -> int:
        # Jobs of a collection deleted meanwhile run alone (claim then finds nothing).
        with self._sessions() as session:
            row = session.get(JobRow, job_id)
            return row.collection_id if row is not None else -job_id

    def _run_safely(self, job_id: int) -> None:
        try:
            self._run(job_id)
        except Exception:  # never let a worker die: the next job must still run
            logger.exception("job %d: the runner failed", job_id)
        finally:
            with self._lock:
                self._cancelled.discard(job_id)

    def _run(self, job_id: int) -> None:
        with self._sessions.begin() as session:
            row = jobs_repo.claim(session=session, job_id=job_id)
            job = ClaimedJob.of(row) if row is not None else None
        if job is None:
            return  # cancelled (or its collection deleted) before it ran
        handler = self._handlers.get(job.kind)
        logger.info("job %d (%s): running from item id %d", job.id, job.kind, job.cursor)
        try:
            if handler is None:
                raise LatentspaceError(f"no handler for jobs of kind {job.kind!r}")
            outcome = handler(job, lambda: self._should_stop(job.id))
        except Exception as e:
            logger.exception("job %d (%s) failed", job.id, job.kind)
            message = str(e) if isinstance(e, LatentspaceError) else f"{type(e).__name__}: {e}"
            self._finish(job.id, "failed", error=public(message) or type(e).__name__)
            return
        if outcome == "done":
            self._finish(job.id, "done")
        elif self._stopping.is_set():
            self._finish(job.id, "queued")
            logger.info("job %d (%s): stopped, resumes on the next start", job.id, job.kind)

    def _finish(self, job_id: int, state: JobState, *, error: str | None = None) -> None:
        # Only from running: a job cancelled meanwhile stays cancelled.
        with self._sessions.begin() as session:
            jobs_repo.transition(
                session=session, job_id=job_id, to=state, from_=("running",), error=error
            )
