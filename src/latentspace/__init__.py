"""latentspace: text and images in one CLIP latent space, searchable, with latent arithmetic."""

from __future__ import annotations

from latentspace.errors import LatentspaceError
from latentspace.settings import Settings

__all__ = ["LatentspaceError", "Settings", "__version__"]

__version__ = "0.1.0"
