"""Settings, read once from the environment (prefix ``LATENTSPACE_``) and passed down.

Nested sections use a double underscore: ``LATENTSPACE_ENCODER__DEVICE=cuda``.
Library modules never read ``os.environ``; they take a :class:`Settings` (or one of its
sections) as an argument.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["EncoderSettings", "LimitSettings", "Settings"]


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
    cache_dir: Path | None = Field(
        default=None, description="Where downloaded weights are kept (default: the HF cache)."
    )


class LimitSettings(BaseModel):
    """Bounds on what a caller may send; each over-limit input is a clear error."""

    max_image_pixels: int = Field(
        default=40_000_000, ge=1, description="Largest image (width × height) accepted."
    )
    max_image_bytes: int = Field(default=32 * 1024 * 1024, ge=1)
    max_text_chars: int = Field(default=8192, ge=1)
    max_batch: int = Field(default=1024, ge=1)


class Settings(BaseSettings):
    """All of latentspace's settings."""

    model_config = SettingsConfigDict(
        env_prefix="LATENTSPACE_", env_nested_delimiter="__", extra="ignore"
    )

    data_dir: Path = Field(default=Path("./latentspace-data"))
    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL; default SQLite in data_dir."
    )
    api_keys: str = Field(default="", description="Comma-separated API keys.")
    auth: Literal["on", "off"] = "on"
    auto_migrate: bool = Field(
        default=True, description="Upgrade the database schema to the newest on start."
    )
    encoder: EncoderSettings = Field(default_factory=EncoderSettings)
    limits: LimitSettings = Field(default_factory=LimitSettings)

    def resolved_database_url(self) -> str:
        """The database URL, defaulting to a SQLite file inside ``data_dir``."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'latentspace.db').resolve()}"
