"""The blocking client against a live server."""

from __future__ import annotations

import uuid

import httpx
import pytest

import latchkey
from latchkey import (
    APIConnectionError,
    AuthenticationError,
    ConflictError,
    Connection,
    Latchkey,
    NotFoundError,
    PermissionDeniedError,
    Token,
    ValidationError,
)


class Counting(httpx.BaseTransport):
    """The real transport, counting requests by method and path."""

    def __init__(self) -> None:
        self.inner = httpx.HTTPTransport()
        self.seen: list = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.seen.append((request.method, request.url.path))
        return self.inner.handle_request(request)


class Flaky(Counting):
    """Fails the first `failures` attempts with a connection error, then works."""

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.seen.append((request.method, request.url.path))
        if len([s for s in self.seen]) <= self.failures:
            raise httpx.ConnectError("connection refused (simulated)", request=request)
        return self.inner.handle_request(request)


def test_base_url_and_key_come_from_the_environment(env, monkeypatch):
    monkeypatch.setenv("LATCHKEY_URL", env["url"])
    monkeypatch.setenv("LATCHKEY_API_KEY", env["admin_key"])
    with Latchkey() as lk:
        assert lk.base_url == env["url"]
        ids = [a.id for a in lk.apps.list(limit=500)]
        assert "salesforce" in ids and "generic-api-key" in ids
    monkeypatch.delenv("LATCHKEY_API_KEY")
    with pytest.raises(ValueError, match="LATCHKEY_API_KEY"):
        Latchkey()


def test_connections_create_list_get_update_verify_delete(admin, workspace, env):
    created = admin.connections.create(
        workspace,
        name="crm backup",
        app="generic-api-key",
        settings={"base_url": env["upstream_url"], "verify_path": "/health"},
        credentials={"api_key": env["upstream_api_key"]},
    )
    assert isinstance(created, Connection)
    assert created.status == "active" and created.id.startswith("conn_")
    assert created.credential_fields == ["api_key"]
    assert env["upstream_api_key"] not in repr(created)

    page = admin.connections.list(workspace)
    assert {c.name for c in page} == {"billing", "crm backup"}
    assert page.next_cursor is None
    assert [c.name for c in admin.connections.list(workspace, limit=1)] == ["billing"]

    got = admin.connections.get(workspace, "crm backup")  # a name with a space
    assert got.id == created.id and got.created_at is not None

    edited = admin.connections.update(workspace, "crm backup", settings={"concurrency_level": 3})
    assert edited.settings["concurrency_level"] == 3
    assert edited.version > created.version

    verified = admin.connections.verify(workspace, created.id)
    assert verified.status == "active"

    admin.connections.delete(workspace, "crm backup")
    with pytest.raises(NotFoundError) as e:
        admin.connections.get(workspace, "crm backup")
    assert e.value.status_code == 404
    assert e.value.error == "not_found"
    assert "crm backup" in e.value.message


def test_errors_carry_the_servers_code_message_and_hint(admin, workspace, env):
    with pytest.raises(ConflictError) as dup:
        admin.connections.create(
            workspace,
            name="billing",
            app="generic-api-key",
            settings={"base_url": env["upstream_url"]},
            credentials={"api_key": "x"},
            verify=False,
        )
    assert dup.value.status_code == 409 and dup.value.error

    with pytest.raises(ValidationError) as bad:
        admin.connections.create(
            workspace,
            name="wrong-key",
            app="generic-api-key",
            settings={"base_url": env["upstream_url"], "verify_path": "/me"},
            credentials={"api_key": "not-the-key"},
        )
    assert bad.value.status_code == 422
    assert bad.value.error == "verification_failed"
    assert bad.value.hint, "a failed verification says what to do"
    # Nothing was stored.
    with pytest.raises(NotFoundError):
        admin.connections.get(workspace, "wrong-key")

    with Latchkey(base_url=env["url"], api_key="lk_" + "x" * 43) as stranger:
        with pytest.raises(AuthenticationError) as unauth:
            stranger.connections.list(workspace)
    assert unauth.value.error == "unauthorized" and unauth.value.hint


def test_token_is_cached_until_it_is_about_to_expire(env):
    sf = env["salesforce"]
    counting = Counting()
    with Latchkey(base_url=env["url"], api_key=env["admin_key"], transport=counting) as lk:
        first = lk.token(sf["workspace"], sf["connection"])
        second = lk.token(sf["workspace"], sf["connection"])
        assert isinstance(first, Token)
        assert first.access_token and first.expires_at is not None
        assert first.instance_url and first.instance_url.startswith("https://")
        assert second is first
        assert counting.seen.count(("GET", "/v1/workspaces/sfdemo/connections/sf-prod/token")) == 1
        assert first.access_token not in repr(first)

        refreshed = lk.token(sf["workspace"], sf["connection"], force_refresh=True)
        assert ("POST", "/v1/workspaces/sfdemo/connections/sf-prod/token/refresh") in counting.seen
        assert refreshed.access_token != first.access_token
        # The refreshed token replaced the cached one.
        assert lk.token(sf["workspace"], sf["connection"]).access_token == refreshed.access_token

    # A margin longer than the token's life: the cached token is never good enough.
    counting = Counting()
    with Latchkey(base_url=env["url"], api_key=env["admin_key"], transport=counting, token_margin=10 * 86400) as lk:
        lk.token(sf["workspace"], sf["connection"])
        lk.token(sf["workspace"], sf["connection"])
    assert counting.seen.count(("GET", "/v1/workspaces/sfdemo/connections/sf-prod/token")) == 2


def test_proxy_returns_the_applications_answer(admin, workspace, env):
    r = admin.proxy(workspace, "billing", "POST", "/echo", params={"page": "2"}, json={"hello": "world"})
    assert isinstance(r, httpx.Response)
    assert r.status_code == 200
    assert "latchkey-queue-ms" in r.headers
    echoed = r.json()
    assert echoed["path"] == "/echo" and echoed["query"] == "page=2"
    assert echoed["method"] == "POST" and '"hello"' in echoed["body"]
    # Latchkey put the application's key in (the application echoed a header it received) and
    # kept the caller's Latchkey key out; an echo of the injected key is blanked on the way back.
    assert echoed["headers"]["x-api-key"] == "[REDACTED]"
    assert env["upstream_api_key"] not in r.text
    assert env["admin_key"] not in r.text

    # The application's own errors come back as answers, not exceptions.
    forbidden = admin.proxy(workspace, "billing", "GET", "forbidden")
    assert forbidden.status_code == 403 and forbidden.json()["error"] == "insufficient_scope"

    # Latchkey's refusals are typed errors.
    with pytest.raises(NotFoundError):
        admin.proxy(workspace, "no-such-connection", "GET", "/echo")
    read_only = admin.api_keys.create("reader", workspace=workspace, scopes=["read"])
    with Latchkey(base_url=env["url"], api_key=read_only.key) as reader:
        with pytest.raises(PermissionDeniedError) as denied:
            reader.proxy(workspace, "billing", "GET", "/echo")
        assert denied.value.details.get("required_scope") == "proxy"
        assert "proxy" in denied.value.message


def test_network_errors_are_retried_for_idempotent_requests_only(env, admin):
    flaky = Flaky(failures=2)
    with Latchkey(base_url=env["url"], api_key=env["admin_key"], transport=flaky, max_retries=2) as lk:
        assert len(lk.apps.list(limit=1)) == 1
    assert len(flaky.seen) == 3, "two failures, then the third attempt got through"

    flaky = Flaky(failures=1)
    slug = "never-" + uuid.uuid4().hex[:8]
    with Latchkey(base_url=env["url"], api_key=env["admin_key"], transport=flaky, max_retries=5) as lk:
        with pytest.raises(APIConnectionError):
            lk.workspaces.create(slug)
    assert flaky.seen == [("POST", "/v1/workspaces")], "a POST is never sent again"
    with pytest.raises(NotFoundError):
        admin.workspaces.get(slug)

    # Bounded: a server that never answers costs max_retries + 1 attempts.
    flaky = Flaky(failures=1000)
    with Latchkey(base_url=env["url"], api_key=env["admin_key"], transport=flaky, max_retries=3) as lk:
        with pytest.raises(APIConnectionError):
            lk.connections.list("sfdemo")
    assert len(flaky.seen) == 4


def test_package_exports_the_documented_surface():
    for name in ["Latchkey", "AsyncLatchkey", "verify_webhook", "LatchkeyError", "APIError"]:
        assert hasattr(latchkey, name)
