"""The asyncio client: the same surface, awaited."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from latchkey import APIConnectionError, AsyncLatchkey, Connection, NotFoundError, Page, ValidationError


class Counting(httpx.AsyncBaseTransport):
    def __init__(self, failures: int = 0) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.seen: list = []
        self.failures = failures

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.seen.append((request.method, request.url.path))
        if len(self.seen) <= self.failures:
            raise httpx.ConnectError("connection refused (simulated)", request=request)
        return await self.inner.handle_async_request(request)


def test_async_connections_and_errors(env, workspace):
    async def run() -> None:
        async with AsyncLatchkey(base_url=env["url"], api_key=env["admin_key"]) as lk:
            page = await lk.connections.list(workspace)
            assert isinstance(page, Page) and [c.name for c in page] == ["billing"]
            got = await lk.connections.get(workspace, "billing")
            assert isinstance(got, Connection) and got.status == "active"
            with pytest.raises(NotFoundError) as e:
                await lk.connections.get(workspace, "nope")
            assert e.value.error == "not_found"
            with pytest.raises(ValidationError) as bad:
                await lk.connections.create(workspace, name="x", app="no-such-app")
            assert bad.value.status_code == 422 and bad.value.message

    asyncio.run(run())


def test_async_token_cache_and_proxy(env, workspace):
    sf = env["salesforce"]

    async def run() -> None:
        counting = Counting()
        async with AsyncLatchkey(base_url=env["url"], api_key=env["admin_key"], transport=counting) as lk:
            a, b = await asyncio.gather(lk.token(sf["workspace"], sf["connection"]),
                                        lk.token(sf["workspace"], sf["connection"]))
            assert a.access_token == b.access_token and a.expires_at is not None
            assert counting.seen.count(("GET", "/v1/workspaces/sfdemo/connections/sf-prod/token")) == 1
            r = await lk.proxy(workspace, "billing", "GET", "/echo", params={"q": "1"})
            assert r.status_code == 200 and r.json()["query"] == "q=1"
            limits = await lk.proxy(sf["workspace"], sf["connection"], "GET", "/services/data/v62.0/limits")
            assert limits.status_code == 200 and "DailyApiRequests" in limits.json()

    asyncio.run(run())


def test_async_retries_only_idempotent_requests(env):
    async def run() -> None:
        t = Counting(failures=1)
        async with AsyncLatchkey(base_url=env["url"], api_key=env["admin_key"], transport=t) as lk:
            assert len(await lk.apps.list(limit=2)) == 2
        assert len(t.seen) == 2
        t = Counting(failures=1)
        async with AsyncLatchkey(base_url=env["url"], api_key=env["admin_key"], transport=t) as lk:
            with pytest.raises(APIConnectionError):
                await lk.connections.create("sfdemo", name="z", app="generic-api-key")
        assert len(t.seen) == 1

    asyncio.run(run())
