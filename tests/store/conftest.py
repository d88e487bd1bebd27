"""Store fixtures: contexts a test opens, released at its end."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from latentspace.service import Context


@pytest.fixture
def opened() -> Iterator[list[Context]]:
    """Every context a test opens; each gives its data directory up at the end."""
    contexts: list[Context] = []
    yield contexts
    for ctx in contexts:
        if ctx.lock is not None:
            ctx.lock.release()
