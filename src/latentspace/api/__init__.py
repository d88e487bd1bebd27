"""The HTTP API: ``create_app(settings)`` builds the FastAPI app (see ``api.app``)."""

from __future__ import annotations

from latentspace.api.app import create_app

__all__ = ["create_app"]
