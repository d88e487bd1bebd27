"""A retrieval corpus from text that ships with CPython: docstrings and the reference.

Two sources, both written by Python's authors (not by this project), built the same way on
every machine with the same Python:

- the standard library's docstrings: each documented function, class or method whose
  docstring has a one-line summary and a body gives a pair, the summary as the query and
  the body (without the summary) as the passage to find;
- the language reference and library topics ``pydoc`` ships (``pydoc_data.topics``): each
  paragraph of three or more sentences gives a pair, its first sentence as the query and
  the rest as the passage (the inverse cloze task of Lee et al., 2019).

The passages of every pair form the corpus.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
import sys
import warnings
from dataclasses import dataclass

__all__ = ["Pair", "modules", "pairs"]

# Modules never imported: they open windows or browsers, print, or are tests and tools.
_SKIP = re.compile(
    r"^(antigravity|this|idlelib|tkinter|turtle|turtledemo|test|lib2to3|ensurepip|pydoc_data"
    r"|msilib|winreg|winsound|_.*|.*\.__main__|.*\.tests?(\..*)?|xxsubtype|webbrowser)$"
)


def modules() -> list[str]:
    """The standard library's modules and their submodules, sorted, minus :data:`_SKIP`."""
    names: set[str] = set()
    for top in sorted(sys.stdlib_module_names):
        if _SKIP.match(top):
            continue
        try:
            module = importlib.import_module(top)
        except Exception:  # a module this platform lacks (nis, msvcrt, ...)
            continue
        names.add(top)
        for info in pkgutil.walk_packages(getattr(module, "__path__", []), f"{top}."):
            if not _SKIP.match(info.name) and not any(
                _SKIP.match(part) for part in info.name.split(".")[1:]
            ):
                names.add(info.name)
    return sorted(names)


_MIN_SUMMARY_WORDS = 4
_MIN_BODY_CHARS = 120
_MAX_BODY_CHARS = 1_500


@dataclass(frozen=True)
class Pair:
    """A query and the id of the passage that answers it."""

    query: str
    passage_id: str
    passage: str


def _documented(module: object) -> list[tuple[str, object]]:
    out = []
    for name, value in sorted(vars(module).items()):
        if name.startswith("_"):
            continue
        if inspect.isfunction(value) or inspect.isclass(value):
            if getattr(value, "__module__", None) != module.__name__:  # type: ignore[attr-defined]
                continue
            out.append((name, value))
            if inspect.isclass(value):
                for attr, member in sorted(vars(value).items()):
                    if not attr.startswith("_") and inspect.isfunction(member):
                        out.append((f"{name}.{attr}", member))
    return out


def pairs() -> list[Pair]:
    """Every pair of both sources, in a fixed order, passages unique."""
    with warnings.catch_warnings():  # importing the whole library warns of deprecations
        warnings.simplefilter("ignore")
        return _docstring_pairs()


def _docstring_pairs() -> list[Pair]:
    found: list[Pair] = []
    seen: set[str] = set()
    for module_name in modules():
        try:
            module = importlib.import_module(module_name)
        except Exception:  # needs something this machine lacks (a GUI, a C library)
            continue
        for name, value in _documented(module):
            doc = inspect.getdoc(value) or ""
            summary, _, body = doc.partition("\n\n")
            summary = " ".join(summary.split())
            body = re.sub(r"\s+", " ", body).strip()[:_MAX_BODY_CHARS]
            if len(summary.split()) < _MIN_SUMMARY_WORDS or len(body) < _MIN_BODY_CHARS:
                continue
            if body in seen:
                continue
            seen.add(body)
            found.append(Pair(summary, f"{module_name}:{name}", body))
    return found + _reference_pairs(seen)


def _reference_pairs(seen: set[str]) -> list[Pair]:
    from pydoc_data.topics import topics

    out = []
    for topic in sorted(topics):
        for n, paragraph in enumerate(topics[topic].split("\n\n")):
            text = re.sub(r"\s+", " ", paragraph).strip()
            sentences = re.split(r"(?<=[.!?]) (?=[A-Z])", text)
            if len(sentences) < 3 or len(sentences[0].split()) < _MIN_SUMMARY_WORDS + 2:
                continue
            body = " ".join(sentences[1:])[:_MAX_BODY_CHARS]
            if len(body) < _MIN_BODY_CHARS or body in seen:
                continue
            seen.add(body)
            out.append(Pair(sentences[0], f"reference:{topic}:{n}", body))
    return out
