"""The model hub, asked only when a model needs a download: off or out of reach, say so at once.

Hugging Face's client retries a hub it cannot reach for over a minute before it gives up; a
server started without network would sit in those retries on the first request that names
a model it does not have. :func:`require_hub` answers first: downloads switched off
(``HF_HUB_OFFLINE``), or no TCP connection to the hub (``HF_ENDPOINT``) within a few seconds,
is a :class:`~latentspace.errors.ModelUnavailable` naming the local ways out.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from latentspace.embedder.installed import installed_copy
from latentspace.embedder.models import WEIGHT_FILES
from latentspace.errors import ModelUnavailable

__all__ = [
    "CONNECT_SECONDS",
    "downloads_off",
    "hf_cached",
    "offline_hint",
    "openclip_cached",
    "require_hub",
    "st_location",
]

CONNECT_SECONDS = 3.0  # a hub that does not accept a connection by then is out of reach
_TRUE = {"1", "true", "yes", "on"}


def offline_hint(spec: str, cause: object) -> str:
    """The message for a model that would need a download this machine cannot make."""
    return (
        f"model {spec!r} is not available on this machine and could not be downloaded "
        f"({cause}). Use a local copy instead (`openclip:/path/to/dir` with "
        "open_clip_config.json + open_clip_model.safetensors, or `st:/path/to/dir`), "
        "or the bundled `tiny-shapes` model."
    )


def downloads_off() -> bool:
    """Whether Hugging Face downloads are switched off (``HF_HUB_OFFLINE``)."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in _TRUE


def require_hub(spec: str, *, seconds: float = CONNECT_SECONDS) -> None:
    """Return when ``spec``'s weights could be downloaded now.

    Raises:
        ModelUnavailable: downloads are off, or the hub accepts no connection in ``seconds``.
    """
    if downloads_off():
        raise ModelUnavailable(offline_hint(spec, "downloads are off: HF_HUB_OFFLINE is set"))
    endpoint = urlsplit(os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
    host = endpoint.hostname or "huggingface.co"
    port = endpoint.port or (80 if endpoint.scheme == "http" else 443)
    try:
        socket.create_connection((host, port), timeout=seconds).close()
    except OSError as e:
        cause = f"the hub {host}:{port} cannot be reached: {e}"
        raise ModelUnavailable(offline_hint(spec, cause)) from e


def hf_cached(repo_id: str, filenames: tuple[str, ...], cache_dir: str | None) -> str | None:
    """The first of ``filenames`` of hub repository ``repo_id`` in the local cache, or None."""
    from huggingface_hub import try_to_load_from_cache

    for filename in filenames:
        found = try_to_load_from_cache(repo_id, filename, cache_dir=cache_dir)
        if isinstance(found, str):
            return found
    return None


def openclip_cached(cfg: dict[str, Any], cache_dir: str | None) -> str | None:
    """Where the weights an open_clip pretrained config names are on this machine, or None."""
    hub = cfg.get("hf_hub", "")
    if hub:
        repo_id, filename = os.path.split(hub)  # "org/repo/" names the default file
        names = (f"{Path(filename).stem}.safetensors", filename) if filename else WEIGHT_FILES
        return hf_cached(repo_id, names, cache_dir)
    url = cfg.get("url", "")
    if url:
        local = Path(cache_dir or Path("~/.cache/clip").expanduser()) / os.path.basename(url)
        return str(local) if local.is_file() else None
    return None


def st_location(target: str, cache_dir: str | None) -> str | None:
    """Where a sentence-transformers model is on this machine (a folder, an installed
    package's copy, or the hub cache), or None when it needs a download."""
    path = Path(target).expanduser()
    if path.is_dir():
        return str(path) if (path / "modules.json").is_file() else None
    if (packaged := installed_copy(target)) is not None:
        return str(packaged)
    repo_id = target if "/" in target else f"sentence-transformers/{target}"
    found = hf_cached(repo_id, ("modules.json",), cache_dir)
    return str(Path(found).parent) if found else None
