"""The stored originals a snapshot may carry: after its parts, one member
``originals/<sha256>`` per image file, named by the sha256 of its bytes, so each is its own
checksum; the manifest says how many there are and their bytes in all (``originals``).
A restore writes them back under ``data_dir/blobs``, and the restored collection can serve
its images, re-encode them and migrate as the original could.
"""

from __future__ import annotations

import hashlib
import re
import tarfile
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

from latentspace.errors import InvalidInput

__all__ = [
    "PREFIX",
    "add_originals",
    "checked_count",
    "copy_hashed",
    "extract_original",
    "tally",
]

PREFIX = "originals/"
_NAME = re.compile(r"originals/[0-9a-f]{64}")


def tally(originals: Sequence[tuple[str, Path]]) -> dict[str, int]:
    """What the manifest says of ``(sha256, file)`` pairs: their count and bytes."""
    return {"count": len(originals), "bytes": sum(p.stat().st_size for _, p in originals)}


def add_originals(tar: tarfile.TarFile, originals: Sequence[tuple[str, Path]]) -> None:
    """Add each file as ``originals/<its sha256>``."""
    for sha256, path in originals:
        tar.add(path, arcname=f"{PREFIX}{sha256}", recursive=False)


def extract_original(member: tarfile.TarInfo, source: IO[bytes], scratch: Path) -> str:
    """Copy one ``originals/…`` member into ``scratch/originals``, checking its bytes
    against its name; its sha256.

    Raises:
        InvalidInput: a name that is not ``originals/<sha256>``, or bytes that are not it.
    """
    if not _NAME.fullmatch(member.name) or not member.isfile():
        raise InvalidInput(f"snapshot has an unexpected member {member.name!r}")
    sha256 = member.name.removeprefix(PREFIX)
    folder = scratch / "originals"
    folder.mkdir(exist_ok=True)
    if copy_hashed(source, folder / sha256) != sha256:
        raise InvalidInput(
            f"snapshot original {sha256[:12]}… fails its sha256: the file was altered or damaged"
        )
    return sha256


def copy_hashed(source: IO[bytes], path: Path) -> str:
    """Copy a stream into the file ``path``; the sha256 of what was copied."""
    h = hashlib.sha256()
    with path.open("wb") as out:
        while chunk := source.read(1 << 20):
            h.update(chunk)
            out.write(chunk)
    return h.hexdigest()


def checked_count(manifest: dict[str, Any], found: dict[str, int]) -> None:
    """The originals found (sha256 → bytes) are what the manifest says.

    Raises:
        InvalidInput: more, fewer or other bytes than the manifest's ``originals``.
    """
    said = manifest.get("originals", {"count": 0, "bytes": 0})
    if not isinstance(said, dict):
        raise InvalidInput("snapshot manifest: originals must be {count, bytes}")
    total = sum(found.values())
    if said.get("count") != len(found) or said.get("bytes") != total:
        raise InvalidInput(
            f"snapshot holds {len(found)} originals of {total} bytes; its manifest says "
            f"{said.get('count')!r} of {said.get('bytes')!r}"
        )
