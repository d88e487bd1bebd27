"""Which model specs can load on this machine without a download (the ``models`` command)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from latentspace.embedder.hub import openclip_cached, st_location
from latentspace.embedder.models import (
    TINY_SHAPES_B_DIR,
    TINY_SHAPES_DIR,
    find_weights,
)
from latentspace.embedder.registry import KNOWN_OPENCLIP_HUBS, KNOWN_SPECS, parse_spec
from latentspace.settings import EncoderSettings

__all__ = ["ModelEntry", "list_models", "locate_offline"]


@dataclass(frozen=True)
class ModelEntry:
    """One spec with what it embeds and where its weights are (if on this machine)."""

    spec: str
    modalities: tuple[str, ...]
    offline: bool
    where: str

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)


def _openclip_location(target: str, cache_dir: str | None) -> str | None:
    path = Path(target).expanduser()
    if path.is_dir():
        weights = find_weights(path)
        return str(weights) if weights else None
    if target in KNOWN_OPENCLIP_HUBS:  # no need to import open_clip (and torch) for these
        cfg = {"hf_hub": KNOWN_OPENCLIP_HUBS[target]}
    else:
        from open_clip.pretrained import get_pretrained_cfg

        arch, _, tag = target.partition("/")
        cfg = get_pretrained_cfg(arch, tag)
    return openclip_cached(cfg, cache_dir) if cfg else None


def locate_offline(spec: str, settings: EncoderSettings) -> str | None:
    """Where the weights of ``spec`` are on this machine, or ``None`` if a download is needed."""
    cache_dir = str(settings.cache_dir) if settings.cache_dir else None
    parsed = parse_spec(spec)
    if parsed.scheme in ("tiny-shapes", "tiny-shapes-b"):
        bundled = TINY_SHAPES_B_DIR if parsed.scheme == "tiny-shapes-b" else TINY_SHAPES_DIR
        weights = find_weights(bundled)
        return str(weights) if weights else None
    if parsed.scheme == "openclip":
        return _openclip_location(parsed.target, cache_dir)
    if parsed.scheme == "st":
        return st_location(parsed.target, cache_dir)
    return None


def list_models(
    settings: EncoderSettings, *, include_all_openclip: bool = False
) -> list[ModelEntry]:
    """tiny-shapes, the well-known specs and (optionally) every open_clip pretrained tag."""
    specs = ["tiny-shapes", "tiny-shapes-b", *KNOWN_SPECS]
    if include_all_openclip:
        import open_clip

        specs += [
            f"openclip:{arch}/{tag}"
            for arch, tag in open_clip.list_pretrained()
            if f"openclip:{arch}/{tag}" not in specs
        ]
    entries = []
    for spec in specs:
        where = locate_offline(spec, settings)
        modalities = ("text",) if spec.startswith("st:") else ("text", "image")
        entries.append(ModelEntry(spec, modalities, where is not None, where or "needs download"))
    return entries
