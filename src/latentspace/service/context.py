"""The service context: what every use-case needs, built once and passed to each call.

It holds parts and no behaviour: settings, the database engine and its sessions, the live
state this process keeps per collection (:class:`~latentspace.live.LiveState`: indexes,
keyword indexes, hit rows, perceptual hashes, maps, collection rows, encoders) and the
background job runner. The API's lifespan builds it (:func:`latentspace.service.lifecycle.
start`), as does the CLI; use-case modules are functions that take it first, as repository
functions take a session.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from latentspace.datadir import DataDirLock
from latentspace.live import EncoderFactory, LiveState
from latentspace.runner import JobRunner
from latentspace.settings import Settings
from latentspace.store.engine import make_engine, make_session_factory
from latentspace.store.expiry import Clock
from latentspace.types import TimingHook

__all__ = ["Background", "Context", "Sweeping", "Warming", "build_context"]


class Background(Protocol):
    """A thread started with the instance, stopped before it closes."""

    def stop(self) -> None:
        """Stop and wait for the thread."""


class Sweeping(Background, Protocol):
    """The thread that deletes expired items."""

    @property
    def swept(self) -> dict[str, int]:
        """Items it deleted since start, by collection."""


class Warming(Background, Protocol):
    """The thread that fills caches after start-up."""

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until it is done (or ``timeout`` seconds); whether it is."""


@dataclass
class Context:
    """Settings, database, live state and job runner of one service instance.

    ``live`` owns everything this process keeps per collection; ``jobs`` runs background
    jobs (started by ``lifecycle.start``); ``model_failures`` holds the model specs that
    could not be loaded at start-up, and why; ``lock`` the data directory's owner lock
    while this instance holds it; ``warnings`` what start-up found amiss that readiness
    reports, and ``refusal`` what makes it refuse readiness outright; ``follower`` the
    thread applying other processes' writes (``service.replica``), when one runs;
    ``warmer`` the thread that fills the hit cache and builds the payload indexes after
    start-up (``lifecycle.Warmer``); ``backups`` the thread that queues scheduled backups
    (``backups.BackupScheduler``), when a schedule is set; ``sweeper`` the thread that
    deletes expired items (``expiry.Sweeper``), when this process writes.
    """

    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    live: LiveState
    jobs: JobRunner
    model_failures: dict[str, str] = field(default_factory=dict)
    lock: DataDirLock | None = None
    follower: Background | None = None
    warmer: Warming | None = None
    backups: Background | None = None
    sweeper: Sweeping | None = None
    warnings: list[str] = field(default_factory=list)
    refusal: str | None = None  # why this instance must not call itself ready

    def now(self) -> datetime:
        """The time expiry is judged by: the session factory's clock (UTC)."""
        clock: Clock = self.sessions.kw["info"]["clock"]
        return clock()


def build_context(
    settings: Settings,
    *,
    engine: Engine | None = None,
    encoder_factory: EncoderFactory | None = None,
    on_timing: TimingHook | None = None,
    clock: Clock | None = None,
) -> Context:
    """Assemble a context; opens nothing but the engine (see ``lifecycle.start``).

    Args:
        settings: everything configurable.
        engine: an engine to use instead of one made from ``settings``.
        encoder_factory: builds an encoder from a spec (tests inject fakes); default the
            registry's ``create_encoder``.
        on_timing: called with ``(what, label, seconds)`` after each encode and search.
        clock: the UTC time items expire by (tests control it); default the system's.

    Raises:
        VectorIndexError: the settings ask for a GPU that is not there.
    """
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = engine or make_engine(settings.resolved_database_url())
    sessions = make_session_factory(engine, clock)
    live = LiveState(settings, sessions, encoder_factory=encoder_factory, on_timing=on_timing)
    runner = JobRunner(sessions, workers=settings.server.job_workers)
    return Context(settings, engine, sessions, live, runner)
