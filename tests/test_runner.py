"""The job runner on its own: states move only as the rows say, failures are recorded,
a stop puts the job in progress back in the queue, and no thread outlives ``stop``."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from latentspace.errors import InvalidInput
from latentspace.runner import ClaimedJob, JobOutcome, JobRunner
from latentspace.store import jobs as jobs_repo
from latentspace.store.engine import make_engine, make_session_factory
from latentspace.store.tables import Base, CollectionRow, JobRow


@pytest.fixture
def sessions(tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    """An empty SQLite store with two collections (ids 1 and 2)."""
    engine = make_engine(f"sqlite:///{tmp_path / 'jobs.db'}")
    Base.metadata.create_all(engine)
    factory = make_session_factory(engine)
    with factory.begin() as session:
        session.add(CollectionRow(id=1, name="c", model=None, dim=2, fingerprint="f"))
        session.add(CollectionRow(id=2, name="d", model=None, dim=2, fingerprint="f"))
    yield factory
    engine.dispose()


def add_job(
    sessions: sessionmaker[Session],
    kind: str = "test",
    state: str = "queued",
    collection_id: int = 1,
) -> int:
    with sessions.begin() as session:
        collection = session.get(CollectionRow, collection_id)
        assert collection is not None
        row = jobs_repo.create_job(session=session, collection=collection, kind=kind, params={})
        row.state = state
        return row.id


def state_of(sessions: sessionmaker[Session], job_id: int) -> tuple[str, str | None]:
    with sessions() as session:
        row = session.get(JobRow, job_id)
        assert row is not None
        return row.state, row.error


def settle(sessions: sessionmaker[Session], job_id: int, timeout: float = 10.0) -> str:
    deadline = time.monotonic() + timeout
    while (state := state_of(sessions, job_id)[0]) in ("queued", "running"):
        assert time.monotonic() < deadline, state
        time.sleep(0.01)
    return state


def test_jobs_finish_fail_and_are_refused_by_kind(sessions: sessionmaker[Session]) -> None:
    def ok(job: ClaimedJob, should_stop: Callable[[], bool]) -> JobOutcome:
        return "done"

    def broken(job: ClaimedJob, should_stop: Callable[[], bool]) -> JobOutcome:
        raise InvalidInput("the labels went away")

    def crashing(job: ClaimedJob, should_stop: Callable[[], bool]) -> JobOutcome:
        raise ZeroDivisionError("division by zero")

    runner = JobRunner(sessions)
    runner.start({"ok": ok, "broken": broken, "crashing": crashing})
    try:
        ids = {kind: add_job(sessions, kind) for kind in ("ok", "broken", "crashing", "other")}
        for job_id in ids.values():
            runner.submit(job_id)
        for job_id in ids.values():
            settle(sessions, job_id)
    finally:
        runner.stop()
    assert not runner.running
    assert state_of(sessions, ids["ok"]) == ("done", None)
    assert state_of(sessions, ids["broken"]) == ("failed", "the labels went away")
    assert state_of(sessions, ids["crashing"]) == ("failed", "ZeroDivisionError: division by zero")
    assert state_of(sessions, ids["other"]) == ("failed", "no handler for jobs of kind 'other'")


def test_start_resumes_unfinished_jobs_and_skips_finished_ones(
    sessions: sessionmaker[Session],
) -> None:
    seen: list[int] = []

    def record(job: ClaimedJob, should_stop: Callable[[], bool]) -> JobOutcome:
        seen.append(job.id)
        return "done"

    queued, running = add_job(sessions), add_job(sessions, state="running")
    cancelled = add_job(sessions, state="cancelled")
    runner = JobRunner(sessions)
    assert runner.start({"test": record}) == [queued, running]
    try:
        assert settle(sessions, running) == "done"
        runner.submit(cancelled)  # not unfinished: claimed by no one
        later = add_job(sessions)
        runner.submit(later)
        assert settle(sessions, later) == "done"
    finally:
        runner.stop()
    assert seen == [queued, running, later]
    assert state_of(sessions, cancelled) == ("cancelled", None)
    with pytest.raises(RuntimeError, match="already started"):
        runner.start({})


def handler_held_until(
    entered: threading.Event, stopped: threading.Event
) -> Callable[[ClaimedJob, Callable[[], bool]], JobOutcome]:
    """A handler that works until it is told to stop (then it says why it returned)."""

    def handler(job: ClaimedJob, should_stop: Callable[[], bool]) -> JobOutcome:
        entered.set()
        deadline = time.monotonic() + 10
        while not should_stop():
            assert time.monotonic() < deadline
            time.sleep(0.005)
        stopped.set()
        return "stopped"

    return handler


def test_a_cancel_reaches_the_running_handler(sessions: sessionmaker[Session]) -> None:
    entered, stopped = threading.Event(), threading.Event()
    runner = JobRunner(sessions)
    runner.start({"test": handler_held_until(entered, stopped)})
    try:
        job_id = add_job(sessions)
        runner.submit(job_id)
        assert entered.wait(10)
        with sessions.begin() as session:
            assert jobs_repo.transition(
                session=session, job_id=job_id, to="cancelled", from_=jobs_repo.UNFINISHED
            )
        runner.cancelled(job_id)
        assert stopped.wait(10)
    finally:
        runner.stop()
    assert state_of(sessions, job_id) == ("cancelled", None)


def test_stop_requeues_the_running_job(sessions: sessionmaker[Session]) -> None:
    entered, stopped = threading.Event(), threading.Event()
    runner = JobRunner(sessions)
    runner.start({"test": handler_held_until(entered, stopped)})
    job_id, waiting = add_job(sessions), add_job(sessions)
    runner.submit(job_id)
    runner.submit(waiting)
    assert entered.wait(10)
    runner.stop()
    assert stopped.is_set()
    assert not runner.running
    assert state_of(sessions, job_id) == ("queued", None)
    assert state_of(sessions, waiting) == ("queued", None)
    runner.stop()  # a second stop is harmless


def test_progress_is_refused_once_a_job_is_not_running(sessions: sessionmaker[Session]) -> None:
    job_id = add_job(sessions, state="running")
    with sessions.begin() as session:
        assert jobs_repo.advance(session=session, job_id=job_id, done=5, total=9, cursor=17)
        assert jobs_repo.transition(
            session=session, job_id=job_id, to="cancelled", from_=jobs_repo.UNFINISHED
        )
        assert not jobs_repo.advance(session=session, job_id=job_id, done=6, total=9, cursor=18)
        assert not jobs_repo.transition(
            session=session, job_id=job_id, to="done", from_=("running",)
        )
    with sessions() as session:
        row, name = jobs_repo.get_job(session=session, job_id=job_id)
        assert (row.state, row.done, row.cursor, name) == ("cancelled", 5, 17, "c")


def test_a_long_job_holds_up_its_own_collection_only(sessions: sessionmaker[Session]) -> None:
    # a 7-minute map fit of one collection blocked every other collection's jobs
    release, order = threading.Event(), []

    def handler(job: ClaimedJob, should_stop: Callable[[], bool]) -> JobOutcome:
        order.append(job.id)
        if job.kind == "long":
            assert release.wait(10)
        return "done"

    runner = JobRunner(sessions, workers=2)
    runner.start({"long": handler, "short": handler})
    try:
        long = add_job(sessions, "long")
        same = add_job(sessions, "short")  # waits for the long one: same collection
        other = add_job(sessions, "short", collection_id=2)
        for job_id in (long, same, other):
            runner.submit(job_id)
        assert settle(sessions, other) == "done"
        assert state_of(sessions, same)[0] == "queued"
        assert state_of(sessions, long)[0] == "running"
        release.set()
        assert settle(sessions, same) == "done"
    finally:
        release.set()
        runner.stop()
    assert order.index(long) < order.index(same)
    assert not runner.running


def test_a_failed_jobs_error_shows_no_server_folders(sessions: sessionmaker[Session]) -> None:
    # a job's error is shown to read keys: where the server keeps its files is not theirs
    def reading(job: ClaimedJob, should_stop: Callable[[], bool]) -> JobOutcome:
        raise InvalidInput("cannot read /srv/latentspace/blobs/ab/cd.png (2/3 read)")

    runner = JobRunner(sessions)
    runner.start({"reading": reading})
    try:
        job_id = add_job(sessions, "reading")
        runner.submit(job_id)
        assert settle(sessions, job_id) == "failed"
    finally:
        runner.stop()
    assert state_of(sessions, job_id) == ("failed", "cannot read …/cd.png (2/3 read)")
