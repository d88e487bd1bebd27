"""The README's configuration table names every setting with its default."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel

from latentspace.settings import Settings

README = Path(__file__).resolve().parents[1] / "README.md"


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
    text = README.read_text()
    missing = [n for n in _env_names(Settings, "LATENTSPACE_") if f"`{n}`" not in text]
    assert not missing, f"README configuration table lacks {missing}"


def test_first_lines_are_the_two_commands() -> None:
    lines = README.read_text().splitlines()
    block = lines[lines.index("```bash") + 1 : lines.index("```bash") + 3]
    assert block[0].startswith("make run")
    assert block[1].startswith("make test")
