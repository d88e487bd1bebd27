"""Cross-site writes, DNS rebinding, CORS, page headers and key guessing, over HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from tests.cli_server import cli_server
from tests.fixtures import ADMIN_KEY, READ_KEY, make_settings

from latentspace.api import create_app

LOCAL = "http://127.0.0.1:8000"


@pytest.fixture
def loopback(tmp_path: Path) -> Iterator[TestClient]:
    """The default local mode: auth on, no keys, loopback clients only."""
    app = create_app(make_settings(tmp_path, api_keys=""))
    with TestClient(app, client=("127.0.0.1", 5000), base_url=LOCAL) as c:
        assert c.post("/v1/collections", json={"name": "c", "dim": 2}).status_code == 201
        yield c


def count(c: TestClient) -> int:
    found: int = c.get("/v1/collections/c").json()["count"]
    return found


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "http://evil.example"},
        {"Origin": "null"},
        {"Sec-Fetch-Site": "cross-site"},
        {"Origin": "http://127.0.0.1:8000", "Sec-Fetch-Site": "cross-site"},
        {"Origin": "http://localhost:3000", "Sec-Fetch-Site": "same-site"},
        {"Sec-Fetch-Site": "same-site"},
    ],
    ids=["origin", "null-origin", "fetch-site", "fetch-site-wins", "other-port", "same-site"],
)
def test_a_cross_site_write_without_a_key_is_refused(
    loopback: TestClient, headers: dict[str, str]
) -> None:
    files = [("files", ("x.png", b"\x89PNG", "image/png"))]
    for method, path, kwargs in [
        ("POST", "/v1/collections/c/images", {"files": files}),
        ("POST", "/v1/collections/c/items", {"json": {"items": [{"vector": [1, 0]}]}}),
        ("DELETE", "/v1/collections/c", {}),
    ]:
        r = loopback.request(method, path, headers=headers, **kwargs)
        assert r.status_code == 403, r.text
        assert r.headers["content-type"] == "application/problem+json"
        assert "cross-site" in r.json()["detail"]
    assert count(loopback) == 0
    assert loopback.get("/v1/collections/c", headers=headers).status_code == 200  # reads pass


def test_same_origin_writes_pass(loopback: TestClient) -> None:
    for headers in (
        {"Origin": LOCAL},
        {"Sec-Fetch-Site": "same-origin"},
        {"Origin": LOCAL, "Sec-Fetch-Site": "same-site"},
        {},
    ):
        r = loopback.post(
            "/v1/collections/c/items", json={"items": [{"vector": [1, 0]}]}, headers=headers
        )
        assert r.status_code == 200, r.text


@pytest.mark.parametrize("host", ["attacker.example", "attacker.example:8000", "10.0.0.5"])
def test_a_foreign_host_name_is_refused_in_loopback_mode(loopback: TestClient, host: str) -> None:
    for method, path in [("GET", "/v1/collections"), ("DELETE", "/v1/collections/c")]:
        r = loopback.request(method, path, headers={"Host": host})
        assert r.status_code == 400, r.text
        assert "is not served here" in r.json()["detail"]
    assert loopback.get("/v1/collections/c").status_code == 200  # nothing was deleted
    for name in ("localhost:8000", "[::1]:8000", "127.0.0.1"):
        assert loopback.get("/healthz", headers={"Host": name}).status_code == 200


@pytest.mark.parametrize(
    ("auth_mode", "keys"), [("off", ""), ("on", f"admin:{ADMIN_KEY}")], ids=["auth-off", "keys"]
)
def test_a_server_on_loopback_serves_loopback_names_whatever_the_auth(
    tmp_path: Path, auth_mode: str, keys: str
) -> None:
    # a rebinding page reaches a server on 127.0.0.1 with its own name in Host
    settings = make_settings(tmp_path, auth=auth_mode, api_keys=keys)
    auth = {"Authorization": f"Bearer {ADMIN_KEY}"}
    app = create_app(settings, url="http://127.0.0.1:8000")
    with TestClient(app, base_url="http://127.0.0.1:8000", headers=auth) as c:
        assert c.get("/v1/collections").status_code == 200
        foreign = c.get("/v1/collections", headers={"Host": "attacker.example"})
        assert foreign.status_code == 400, foreign.text
        assert "LATENTSPACE_ALLOWED_HOSTS" in foreign.json()["detail"]
    proxied = make_settings(tmp_path, auth=auth_mode, api_keys=keys, allowed_hosts="search.example")
    app = create_app(proxied, url="http://127.0.0.1:8000")
    with TestClient(app, base_url="http://search.example", headers=auth) as c:  # behind a proxy
        assert c.get("/v1/collections").status_code == 200
    public = create_app(
        make_settings(tmp_path, api_keys=keys or f"admin:{ADMIN_KEY}"), url="http://0.0.0.0:8000"
    )
    with TestClient(public, base_url="http://search.example", headers=auth) as c:
        assert c.get("/v1/collections").status_code == 200  # keys, on every address: any name


def test_allowed_hosts_and_cors_are_settings(tmp_path: Path) -> None:
    settings = make_settings(
        tmp_path, allowed_hosts="search.example", cors_origins="https://app.example"
    )
    auth = {"Authorization": f"Bearer {ADMIN_KEY}"}
    with TestClient(create_app(settings), base_url="http://search.example", headers=auth) as c:
        assert c.get("/healthz").status_code == 200
        assert c.get("/healthz", headers={"Host": "other.example"}).status_code == 400
        preflight = c.options(
            "/v1/collections",
            headers={
                "Origin": "https://app.example",
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization,content-type",
            },
        )
        assert preflight.status_code == 200
        assert preflight.headers["access-control-allow-origin"] == "https://app.example"
        other = c.get("/healthz", headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in other.headers


def test_cors_is_off_by_default(loopback: TestClient) -> None:
    r = loopback.get("/v1/collections", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in r.headers


def test_the_page_has_security_headers(loopback: TestClient) -> None:
    page = loopback.get("/")
    assert page.status_code == 200
    csp = page.headers["content-security-policy"]
    assert "default-src 'self'" in csp
    assert "frame-ancestors 'none'" in csp
    assert "http" not in csp  # no external source
    assert page.headers["x-frame-options"] == "DENY"
    for path in ("/", "/static/app.js", "/v1/collections", "/healthz"):
        assert loopback.get(path).headers["x-content-type-options"] == "nosniff"


def test_repeated_wrong_keys_are_slowed_down(tmp_path: Path) -> None:
    app = create_app(make_settings(tmp_path))
    with TestClient(app, client=("203.0.113.9", 4000)) as guesser:
        for i in range(10):
            r = guesser.get("/v1/collections", headers={"Authorization": f"Bearer guess-{i}"})
            assert r.status_code == 401
        r = guesser.get("/v1/collections", headers={"Authorization": f"Bearer {ADMIN_KEY}"})
        assert r.status_code == 429, r.text
        assert int(r.headers["retry-after"]) >= 1
        assert r.headers["content-type"] == "application/problem+json"


def test_wrong_keys_do_not_lock_out_a_key_already_accepted_from_that_client(
    tmp_path: Path,
) -> None:
    app = create_app(make_settings(tmp_path))
    with TestClient(app, client=("203.0.113.9", 4000)) as shared:  # one address, two users
        admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
        assert shared.get("/v1/collections", headers=admin).status_code == 200
        for i in range(10):  # another user of the address guesses, or sends wrong keys
            r = shared.get("/v1/collections", headers={"Authorization": f"Bearer guess-{i}"})
            assert r.status_code == 401
        assert shared.get("/v1/collections", headers=admin).status_code == 200
        r = shared.get("/v1/collections", headers={"Authorization": "Bearer guess-10"})
        assert r.status_code == 429  # further guesses wait, unchecked
        assert "still work" in r.json()["detail"]
        read = {"Authorization": f"Bearer {READ_KEY}"}  # valid, but never seen from here
        assert shared.get("/v1/collections", headers=read).status_code == 429


def test_the_key_throttle_is_per_client_and_forgets() -> None:
    from latentspace.api.security import FailedKeys

    now = [0.0]
    throttle = FailedKeys(limit=3, window=60.0, clients=2, clock=lambda: now[0])
    for _ in range(3):
        assert throttle.retry_after("a", "guess") is None
        throttle.failed("a")
    assert throttle.retry_after("a", "guess") == 61
    assert throttle.retry_after("b", "guess") is None  # another client is not held
    throttle.accepted("a", "good")
    assert throttle.retry_after("a", "good") is None  # a key accepted from it still works
    now[0] = 30.0
    assert throttle.retry_after("a", "guess") == 31
    now[0] = 61.0  # the window has passed
    assert throttle.retry_after("a", "guess") is None
    for client in ("c", "d", "e"):  # bounded: the oldest clients are forgotten
        throttle.failed(client)
        throttle.accepted(client, "good")
    assert len(throttle._failures) == 2
    assert len(throttle._known) == 2
    for i in range(20):  # and so are a client's oldest accepted keys
        throttle.accepted("e", f"key-{i}")
    assert len(throttle._known["e"]) == FailedKeys.KNOWN_PER_CLIENT


def guess(c: TestClient | httpx.Client, i: int, forwarded_for: str) -> int:
    headers = {"Authorization": f"Bearer guess-{i}", "X-Forwarded-For": forwarded_for}
    return c.get("/v1/collections", headers=headers).status_code


def test_a_fresh_forwarded_for_per_guess_does_not_escape_the_throttle(tmp_path: Path) -> None:
    # `latentspace serve` itself: uvicorn would believe X-Forwarded-For from loopback
    env = {"LATENTSPACE_API_KEYS": f"admin:{ADMIN_KEY}"}
    with cli_server(tmp_path / "data", "serve", env=env) as server:
        server.wait_for("ready at", 120)
        with httpx.Client(base_url=server.url, timeout=30) as c:
            statuses = [guess(c, i, f"198.51.100.{i}") for i in range(11)]
    assert statuses == [401] * 10 + [429]


def test_forwarded_for_is_believed_from_trusted_proxies_only(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, trusted_proxies="127.0.0.1, 10.0.0.0/8")
    with TestClient(create_app(settings), client=("10.1.2.3", 4000)) as proxy:
        # behind a trusted proxy, each forwarded address is its own client
        assert [guess(proxy, i, f"198.51.100.{i}") for i in range(11)] == [401] * 11
        assert [guess(proxy, i, "198.51.100.77") for i in range(11)] == [401] * 10 + [429]
    with TestClient(create_app(settings), client=("203.0.113.9", 4000)) as other:
        # from anywhere else the header is the client's own word, and ignored
        assert [guess(other, i, f"198.51.100.{i}") for i in range(11)] == [401] * 10 + [429]


def test_a_proxied_request_is_no_loopback_client_in_keyless_mode(
    loopback: TestClient,
) -> None:
    # a proxy on this machine relays remote clients from 127.0.0.1: none is served keyless
    for header in ("X-Forwarded-For", "Forwarded", "X-Real-IP"):
        r = loopback.get("/v1/collections", headers={header: "198.51.100.7"})
        assert r.status_code == 403, header
        assert "proxy" in r.json()["detail"]
    assert loopback.get("/v1/collections").status_code == 200


def test_a_trusted_proxy_that_is_not_an_address_is_refused_at_start(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not an address or network"):
        make_settings(tmp_path, trusted_proxies="proxy.internal")
