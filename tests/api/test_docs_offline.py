"""/docs and /redoc work without internet: every asset they name is served by the app."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_the_api_docs_load_nothing_from_outside(client: TestClient, page: str) -> None:
    r = client.get(page)
    assert r.status_code == 200, r.text
    html = r.text
    assert "openapi.json" in html
    urls = re.findall(r"""(?:src|href|url)\s*[=:]\s*['"]([^'"]+)['"]""", html)
    assert urls, html
    assert not [u for u in urls if "//" in u], urls  # nothing from a CDN or any other host
    scripts = [u for u in urls if u.endswith(".js")]
    assert scripts, urls
    for url in urls:
        asset = client.get(url)
        assert asset.status_code == 200, url
        if url.endswith(".js"):
            assert len(asset.content) > 100_000, url  # the real bundle, not a placeholder
