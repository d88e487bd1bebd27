"""The static web page served by the API at ``/`` (no build step)."""

from __future__ import annotations

from pathlib import Path

__all__ = ["WEB_DIR"]

WEB_DIR = Path(__file__).resolve().parent / "static"
