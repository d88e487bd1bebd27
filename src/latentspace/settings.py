"""Settings, read once from the environment (prefix ``LATENTSPACE_``) and passed down.

Nested sections use a double underscore: ``LATENTSPACE_ENCODER__DEVICE=cuda``.
Library modules never read ``os.environ``; they take a :class:`Settings` (or one of its
sections) as an argument.
"""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from latentspace.backup_settings import BackupSettings
from latentspace.types import GpuMode

# A single exact search ``auto`` collections may take before they move to HNSW (ms).
EXACT_LATENCY_MS = 2.0
# Pillow refuses images over 2 × PIL.Image.MAX_IMAGE_PIXELS outright (DecompressionBombError).
PILLOW_PIXEL_GUARD = 178_956_970

__all__ = [
    "EXACT_LATENCY_MS",
    "PILLOW_PIXEL_GUARD",
    "BackupSettings",
    "ClassifySettings",
    "ClusterSettings",
    "EncoderSettings",
    "IndexSettings",
    "LimitSettings",
    "MigrateSettings",
    "SearchSettings",
    "ServerSettings",
    "Settings",
]


class EncoderSettings(BaseModel):
    """How encoders run."""

    device: str = Field(
        default="auto",
        description='"auto" (CUDA when present, else CPU), "cpu", "cuda" or "cuda:N".',
    )
    precision: Literal["auto", "fp32", "bf16", "fp16"] = Field(
        default="auto",
        description="Autocast dtype on CUDA; auto = bf16 where supported, else fp16. CPU is fp32.",
    )
    torch_threads: int = Field(
        default=0, ge=0, description="torch intra-op threads on CPU; 0 leaves torch's default."
    )
    batch_size: int = Field(default=64, ge=1, le=4096, description="Items per forward pass.")
    text_cache_size: int = Field(
        default=4096, ge=0, description="Entries in each encoder's LRU cache of text vectors."
    )
    decode_workers: int = Field(
        default=2, ge=0, description="Threads that decode images in bulk; 0 = inline."
    )
    decode_pixels: int = Field(
        default=64_000_000,
        ge=1,
        description="Pixels of full-size images decoded at once before they are encoded and "
        "dropped (one image at least): bounds a request's decoded working set.",
    )
    cache_dir: Path | None = Field(
        default=None, description="Where downloaded weights are kept (default: the HF cache)."
    )


class LimitSettings(BaseModel):
    """Bounds on what a caller may send; each over-limit input is a clear error."""

    max_image_pixels: int = Field(
        default=40_000_000,
        ge=1,
        le=PILLOW_PIXEL_GUARD,
        description="Largest image (width × height) accepted; at most Pillow's own "
        "decompression-bomb guard, which refuses larger images whatever this says.",
    )
    max_image_bytes: int = Field(default=32 * 1024 * 1024, ge=1)
    max_text_chars: int = Field(default=8192, ge=1)
    max_batch: int = Field(default=1024, ge=1, description="Items, texts or queries per request.")
    max_body_bytes: int = Field(
        default=64 * 1024 * 1024,
        ge=1,
        description="Largest request body, counted as it arrives (with or without Content-Length).",
    )
    max_snapshot_bytes: int = Field(
        default=16 * 1024**3,
        ge=1,
        description="Largest snapshot file `POST /v1/collections/restore` takes as an upload "
        "(streamed to disk; max_body_bytes does not apply to it).",
    )
    max_k: int = Field(default=1000, ge=1, description="Most results one search may ask for.")
    max_path_steps: int = Field(default=64, ge=2, description="Most steps of a path walk.")
    max_documents_chars: int = Field(
        default=2_000_000, ge=1, description="Largest document (characters) to chunk."
    )
    max_request_pixels: int = Field(
        default=400_000_000,
        ge=1,
        description="Pixels all images of one request may decode to, together.",
    )
    max_json_depth: int = Field(
        default=32, ge=1, le=200, description="Deepest nesting of metadata and filters."
    )
    max_metadata_bytes: int = Field(
        default=65_536, ge=2, description="Largest metadata (or filter) once serialised as JSON."
    )
    max_filter_nodes: int = Field(
        default=4096,
        ge=1,
        description="Most JSON values (conditions, branches, $in values) in one filter.",
    )
    max_query_seconds: float = Field(
        default=10.0,
        gt=0,
        description="Deadline of one filter's SQL statement; past it the search answers 503.",
    )
    max_labels: int = Field(
        default=1000, ge=1, description="Most labels one classification or auto-tag job names."
    )
    max_prompts: int = Field(
        default=4096,
        ge=1,
        description="Most prompts (text labels × templates) one classification embeds.",
    )


class ServerSettings(BaseModel):
    """Admission control: how much work the server takes on before it refuses more."""

    max_in_flight: int = Field(
        default_factory=lambda: min(8, os.cpu_count() or 1),
        ge=1,
        description=(
            "Requests that run at once (health and metrics aside); by default one per CPU "
            "core, at most 8: the work is CPU-bound, and more would only queue inside the "
            "process, where nothing can be refused."
        ),
    )
    max_queue: int = Field(
        default=32, ge=0, description="Requests that may wait for a slot; beyond, 503 at once."
    )
    queue_timeout: float = Field(
        default=1.0,
        gt=0,
        description="Seconds a request may wait for a slot before a 503, in a passing burst.",
    )
    queue_target: float = Field(
        default=0.01,
        gt=0,
        description=(
            "While the server sheds load (the queue overflowed), waiters that waited this "
            "many seconds are refused (503) when their turn comes."
        ),
    )
    queue_interval: float = Field(
        default=0.5,
        gt=0,
        description="Shedding load ends this many seconds after the last refusal.",
    )
    max_key_failures: int = Field(
        default=10,
        ge=1,
        description=(
            "Wrong API keys one client may send within key_failure_window before every "
            "request of it gets 429 until the window passes."
        ),
    )
    key_failure_window: float = Field(
        default=60.0, gt=0, description="Seconds over which wrong API keys are counted."
    )
    body_timeout: float = Field(
        default=30.0,
        gt=0,
        description="Seconds a request body may take to arrive (read before it takes a slot).",
    )
    job_workers: int = Field(
        default=2,
        ge=1,
        le=32,
        description="Background jobs (maps, migrations, auto-tagging) that run at once, each "
        "of another collection; one collection's jobs run one at a time.",
    )
    expiry_sweep: float = Field(
        default=10.0,
        gt=0,
        le=86400,
        description="Seconds between sweeps that delete expired items (reads skip them at "
        "once; the sweep frees their room, and replicas follow its deletes).",
    )


class IndexSettings(BaseModel):
    """How collections' vector indexes are built and where they run."""

    memory_budget: int | None = Field(
        default=None,
        ge=1,
        description="Bytes all of this process's indexes may take together (unset: 70 % of "
        "RAM). A write that would grow an index past what the others leave is refused with 507 "
        "before anything is written; `auto` collections plan under it (float32 HNSW, then sq8 "
        "HNSW, then the most accurate IVF-PQ that fits).",
    )
    gpu: GpuMode = Field(
        default="auto",
        description="FAISS on the GPU for flat and IVF indexes: auto (when this faiss build "
        "sees a GPU), on (refuse to start without one), off.",
    )
    exact_latency_ms: float = Field(
        default=EXACT_LATENCY_MS,
        gt=0,
        description="`auto` collections search exactly while one exact search, as measured "
        "on this machine at start-up, takes at most this long; HNSW beyond.",
    )
    exact_limit: int | None = Field(
        default=None,
        ge=1,
        description="Pin the line instead: `auto` collections search exactly below this many "
        "vectors, whatever their dimension. Unset: from exact_latency_ms.",
    )
    compact_ratio: float = Field(
        default=0.2,
        gt=0.0,
        le=1.0,
        description="Share of tombstones in an index past which it is rebuilt without them.",
    )


class SearchSettings(BaseModel):
    """How searches and duplicate checks run."""

    micro_batch: bool = Field(
        default=True,
        description="Run concurrent unfiltered single-vector searches as one FAISS call.",
    )
    duplicate_threshold: float = Field(
        default=0.95,
        gt=0.0,
        le=1.0,
        description="Cosine at or above which an item is a similar shot of another (the "
        "`similar` duplicate tier).",
    )
    duplicate_hamming: int = Field(
        default=10,
        ge=0,
        le=20,
        description="Bits at most between two images' 64-bit perceptual hashes for them to be "
        "the same image (the `same_image` duplicate tier).",
    )
    trash_days: float = Field(
        default=30.0,
        gt=0.0,
        description="Days an item trashed by a duplicate resolution stays restorable.",
    )
    hit_cache_mb: int = Field(
        default=256,
        ge=0,
        description="Memory (estimated) for the rows search results show, so a search reads "
        "no SQL for its hits; 0 = read them from SQL every time.",
    )


class ClassifySettings(BaseModel):
    """Zero-shot classification and auto-tagging: prompts, softmax temperature, job batches."""

    templates: list[str] = Field(
        default_factory=lambda: ["a photo of a {}.", "a picture of a {}.", "an image of a {}."],
        min_length=1,
        description="Prompt templates; `{}` is replaced by each label, and a label's vector "
        "is the normalised mean of its prompts' (open_clip's prompt ensembling). A JSON list "
        "in LATENTSPACE_CLASSIFY__TEMPLATES.",
    )
    temperature: float = Field(
        default=0.01,
        ge=1e-6,
        le=1e6,
        description="Softmax temperature over cosines (CLIP's logit scale 100 is 0.01).",
    )
    job_batch: int = Field(
        default=256, ge=1, le=100_000, description="Items an auto-tag job tags per transaction."
    )

    @field_validator("templates")
    @classmethod
    def _placeholders(cls, templates: list[str]) -> list[str]:
        for template in templates:
            if "{}" not in template:
                raise ValueError(f"template {template!r} has no {{}} for the label")
        return templates


class MigrateSettings(BaseModel):
    """Model migration jobs: how many items a transaction re-encodes, how many pairs fit an
    adapter."""

    batch: int = Field(
        default=256, ge=1, le=100_000, description="Items a migration re-encodes per transaction."
    )
    adapter_pairs: int = Field(
        default=20_000,
        ge=24,
        le=1_000_000,
        description="At most this many items encoded by both models fit an adapter (a "
        "random choice of them when there are more).",
    )


class ClusterSettings(BaseModel):
    """Several processes on one database: replicas that tail the SQL oplog."""

    replica: bool = Field(
        default=False,
        description="Share the data directory with other latentspace processes (`serve "
        "--workers` sets it): the first holds the index files, the others replicate from SQL.",
    )
    poll_ms: float = Field(
        default=200.0,
        gt=0,
        le=3_600_000,
        description="How often a process reads the oplog for writes other processes committed.",
    )
    consistency_timeout: float = Field(
        default=5.0,
        gt=0,
        le=300,
        description="Seconds a search with `consistency.min_seq` waits for its replica to "
        "catch up before it answers 503.",
    )
    url: str | None = Field(
        default=None,
        description="The URL this process serves at, written beside the data-directory lock "
        "(set by `serve`).",
    )
    shards: int = Field(
        default=0,
        ge=0,
        le=1024,
        description="Search on this many Ray Serve shards (items by id hash) instead of "
        "in-process indexes; 0 = off.",
    )
    ray_address: str | None = Field(
        default=None,
        description="The Ray cluster the shards run on (`auto`, `ray://host:10001`); unset "
        "starts a local one.",
    )
    shard_cpus: float = Field(default=1.0, gt=0, le=1024, description="CPUs each shard holds.")


class Settings(BaseSettings):
    """All of latentspace's settings."""

    model_config = SettingsConfigDict(
        env_prefix="LATENTSPACE_", env_nested_delimiter="__", extra="ignore"
    )

    data_dir: Path = Field(default=Path("./latentspace-data"))
    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL; default SQLite in data_dir."
    )
    api_keys: str = Field(
        default="",
        description=(
            "Comma-separated API keys, each `SCOPE[@COLLECTIONS]:SECRET`: read, write or "
            "admin (admin when unprefixed), a glob of the collections it reaches (all "
            "without one); SECRET may be `sha256:HEX` so the plain key never sits in config."
        ),
    )
    auth: Literal["on", "off"] = Field(
        default="on",
        description="off = no API keys checked, for local use only; on without keys = "
        "loopback clients only.",
    )
    allowed_hosts: str = Field(
        default="",
        description="Comma-separated Host names served (`*` = any). Empty: loopback names "
        "while the server listens on loopback or no API key is set (against DNS "
        "rebinding), any name otherwise; behind a proxy, name the proxy's host here.",
    )
    trusted_proxies: str = Field(
        default="",
        description="Comma-separated addresses or networks (`10.0.0.0/8`) of reverse proxies "
        "whose X-Forwarded-For and X-Forwarded-Proto are believed. Empty: none, and the "
        "client is the socket's peer (the wrong-key throttle counts by it).",
    )
    cors_origins: str = Field(
        default="",
        description="Comma-separated origins allowed to call the API from a browser (CORS); "
        "empty: none.",
    )
    embedding_models: str = Field(
        default="tiny-shapes",
        description="Comma-separated model specs /v1/embeddings may load, besides those of "
        "existing collections.",
    )
    rerank_models: str = Field(
        default="",
        description="Comma-separated cross-encoders /v1/rerank may load (cross:/folder); "
        "any embedding model it serves reranks too.",
    )
    store_images: bool = Field(
        default=True, description="Keep uploaded image files in data_dir/blobs (served back)."
    )
    auto_migrate: bool = Field(
        default=True, description="Upgrade the database schema to the newest on start."
    )
    snapshot_dir: Path | None = Field(
        default=None,
        description="Folder of the snapshot files the API writes and restores by name; "
        "default data_dir/snapshots.",
    )
    encoder: EncoderSettings = Field(default_factory=EncoderSettings)
    limits: LimitSettings = Field(default_factory=LimitSettings)
    search: SearchSettings = Field(default_factory=SearchSettings)
    index: IndexSettings = Field(default_factory=IndexSettings)
    server: ServerSettings = Field(default_factory=ServerSettings)
    classify: ClassifySettings = Field(default_factory=ClassifySettings)
    cluster: ClusterSettings = Field(default_factory=ClusterSettings)
    migrate: MigrateSettings = Field(default_factory=MigrateSettings)
    backup: BackupSettings = Field(default_factory=BackupSettings)

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: str) -> str:
        for part in (p.strip() for p in value.split(",")):
            if part:
                try:
                    ipaddress.ip_network(part, strict=False)
                except ValueError as e:
                    raise ValueError(f"{part!r} is not an address or network") from e
        return value

    def proxies(self) -> list[str]:
        """The trusted proxies, one address or network each."""
        return [p.strip() for p in self.trusted_proxies.split(",") if p.strip()]

    def resolved_snapshot_dir(self) -> Path:
        """The snapshot folder (``snapshot_dir``, default ``data_dir/snapshots``)."""
        return self.snapshot_dir or self.data_dir / "snapshots"

    def resolved_database_url(self) -> str:
        """The database URL, defaulting to a SQLite file inside ``data_dir``."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'latentspace.db').resolve()}"
