"""The background job runner: jobs are rows in SQL, run one at a time on a worker thread.

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
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy.orm import Session, sessionmaker

from latentspace.errors import LatentspaceError
from latentspace.store import jobs as jobs_repo
from latentspace.store.tables import JobRow
from latentspace.types import JobState

__all__ = ["ClaimedJob", "JobHandler", "JobOutcome", "JobRunner"]

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


# A handler runs one job: it takes the job and a callable that says whether to stop now
# (asked between batches), and returns how it ended. An exception fails the job.
JobHandler = Callable[[ClaimedJob, Callable[[], bool]], JobOutcome]


class JobRunner:
    """Runs queued jobs, oldest first, on one worker thread (started by :meth:`start`)."""

    def __init__(self, sessions: sessionmaker[Session], *, stop_timeout: float = 60.0) -> None:
        self._sessions = sessions
        self._stop_timeout = stop_timeout
        self._handlers: dict[str, JobHandler] = {}
        self._queue: queue.Queue[int | None] = queue.Queue()
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._cancelled: set[int] = set()
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        """Whether the worker thread is alive."""
        return self._thread is not None and self._thread.is_alive()

    def start(self, handlers: Mapping[str, JobHandler], *, resume: bool = True) -> list[int]:
        """Start the worker with a handler per job kind; the unfinished jobs it resumes
        (none unless ``resume``: a replica leaves them to the data directory's holder,
        which may be running them)."""
        if self._thread is not None:
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
        self._thread = threading.Thread(target=self._work, name="latentspace-jobs", daemon=True)
        self._thread.start()
        return resumed

    def submit(self, job_id: int) -> None:
        """Queue a committed job (it runs once the jobs before it are done)."""
        self._queue.put(job_id)

    def cancelled(self, job_id: int) -> None:
        """Tell a running job that its row was cancelled, so it stops before its next batch."""
        with self._lock:
            self._cancelled.add(job_id)

    def stop(self) -> None:
        """Stop the worker: a job in progress finishes its batch and goes back to queued.

        Waits up to ``stop_timeout`` seconds for the thread (a daemon: past that, the
        process may still exit).
        """
        thread = self._thread
        if thread is None or not thread.is_alive():
            return
        self._stopping.set()
        self._queue.put(None)
        thread.join(self._stop_timeout)
        if thread.is_alive():
            logger.warning("the job worker did not stop within %.0f s", self._stop_timeout)

    def _should_stop(self, job_id: int) -> bool:
        with self._lock:
            return self._stopping.is_set() or job_id in self._cancelled

    def _work(self) -> None:
        while True:
            job_id = self._queue.get()
            if job_id is None or self._stopping.is_set():
                return  # jobs still queued stay queued in SQL: the next start resumes them
            try:
                self._run(job_id)
            except Exception:  # never let the worker die: the next job must still run
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
            self._finish(job.id, "failed", error=message or type(e).__name__)
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
