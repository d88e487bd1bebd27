"""The configuration page's table names every setting with its default."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel

from latentspace.settings import Settings

CONFIGURATION = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"


def _env_names(model: type[BaseModel], prefix: str) -> list[str]:
    names = []
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            names += _env_names(annotation, f"{prefix}{name.upper()}__")
        else:
            names.append(f"{prefix}{name.upper()}")
    return names


def test_every_setting_is_documented() -> None:
    text = CONFIGURATION.read_text()
    rows = {line.split("|")[1].strip() for line in text.splitlines() if line.startswith("| `")}
    missing = [n for n in _env_names(Settings, "LATENTSPACE_") if f"`{n}`" not in rows]
    assert not missing, f"docs/configuration.md's table lacks {missing}"
