"""The MCP server at /mcp, driven by the official MCP Python SDK over Streamable HTTP."""

from __future__ import annotations

import json
import uuid
from typing import Any, Awaitable, Callable

import anyio
import httpx
import httpx2
import pytest
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client


def mcp_call(env, key: str, fn: Callable[[ClientSession], Awaitable[Any]]) -> Any:
    async def run() -> Any:
        async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {key}"}, timeout=30) as http:
            async with streamable_http_client(env["url"] + "/mcp", http_client=http) as streams:
                async with ClientSession(streams[0], streams[1]) as session:
                    await session.initialize()
                    return await fn(session)

    return anyio.run(run)


def text_of(result) -> str:
    return "\n".join(getattr(c, "text", "") for c in result.content)


def upstream_hits(env) -> int:
    return httpx.get(env["control_url"] + "/stats").json()["upstream_hits"]


@pytest.fixture(scope="module")
def agent(env):
    """A workspace with an API-key connection, a key for agents (read + proxy, no secrets) and a
    key without `proxy`."""
    from latchkey import Latchkey

    slug = "mcp-" + uuid.uuid4().hex[:8]
    with Latchkey(base_url=env["url"], api_key=env["admin_key"]) as lk:
        lk.workspaces.create(slug)
        lk.connections.create(slug, name="billing", app="generic-api-key",
                              settings={"base_url": env["upstream_url"], "verify_path": "/health"},
                              credentials={"api_key": env["upstream_api_key"]})
        agent_key = lk.api_keys.create("agent", workspace=slug, scopes=["read", "proxy"]).key
        reader_key = lk.api_keys.create("reader", workspace=slug, scopes=["read"]).key
    return {"ws": slug, "key": agent_key, "reader": reader_key}


def test_tools_are_listed_with_input_schemas(env, agent):
    tools = mcp_call(env, agent["key"], lambda s: s.list_tools())
    by_name = {t.name: t for t in tools.tools}
    assert set(by_name) == {"list_apps", "list_connections", "get_connection", "proxy_request"}
    for t in by_name.values():
        assert t.input_schema["type"] == "object" and t.description
    assert by_name["proxy_request"].input_schema["required"] == ["workspace", "connection", "method", "path"]
    assert by_name["get_connection"].input_schema["required"] == ["workspace", "connection"]
    assert "q" in by_name["list_apps"].input_schema["properties"]


def test_list_apps_connections_and_get_connection_never_show_a_secret(env, agent):
    async def calls(s: ClientSession):
        return (
            await s.call_tool("list_apps", {"q": "salesforce"}),
            await s.call_tool("list_apps", {}),
            await s.call_tool("list_connections", {"workspace": agent["ws"]}),
            await s.call_tool("get_connection", {"workspace": agent["ws"], "connection": "billing"}),
        )

    found, everything, conns, one = mcp_call(env, agent["key"], calls)
    assert not found.is_error
    assert "salesforce" in [a["id"] for a in found.structured_content["items"]]
    assert everything.structured_content["total"] >= len(everything.structured_content["items"])
    assert len(everything.structured_content["items"]) <= 50
    assert [c["name"] for c in conns.structured_content["items"]] == ["billing"]
    assert one.structured_content["app"] == "generic-api-key"
    assert one.structured_content["credential_fields"] == ["api_key"]
    for r in (conns, one):
        assert env["upstream_api_key"] not in text_of(r)
        assert env["upstream_api_key"] not in json.dumps(r.structured_content)


def test_proxy_request_calls_the_application_and_hides_the_credential(env, agent):
    r = mcp_call(env, agent["key"], lambda s: s.call_tool("proxy_request", {
        "workspace": agent["ws"], "connection": "billing", "method": "POST", "path": "/echo",
        "query": {"page": 2}, "headers": {"X-Trace": "t-1", "Authorization": "Bearer stolen"},
        "body": {"hello": "agent"}}))
    assert not r.is_error, text_of(r)
    answer = r.structured_content
    assert answer["status"] == 200
    echoed = answer["body"]
    assert echoed["path"] == "/echo" and echoed["query"] == "page=2"
    assert echoed["headers"]["x-trace"] == "t-1"
    assert json.loads(echoed["body"]) == {"hello": "agent"}
    # The application echoed the injected key: the agent sees it blanked out.
    # (Latchkey's proxy already blanks echoes of the injected credential.)
    assert echoed["headers"]["x-api-key"] in ("[REDACTED]", "[redacted by Latchkey]")
    assert env["upstream_api_key"] not in text_of(r)
    assert agent["key"] not in text_of(r)


def test_proxy_request_answers_are_bounded(env, agent):
    r = mcp_call(env, agent["key"], lambda s: s.call_tool("proxy_request", {
        "workspace": agent["ws"], "connection": "billing", "method": "GET", "path": "/big",
        "query": {"mb": 2}}))
    assert not r.is_error, text_of(r)
    assert r.structured_content["truncated"] is True
    assert "cut at 32768 bytes" in r.structured_content["note"]
    assert len(r.structured_content["body"]) <= 32 * 1024
    assert len(text_of(r)) < 40 * 1024


@pytest.mark.parametrize("path", [
    "https://evil.example/steal", "//evil.example/steal", "/../../admin", "/a/%2e%2e/%2e%2e/admin",
    "/a%2f..%2fadmin", "echo", "/echo?api_key=x",
])
def test_proxy_request_refuses_paths_that_leave_the_base_url(env, agent, path):
    before = upstream_hits(env)
    r = mcp_call(env, agent["key"], lambda s: s.call_tool("proxy_request", {
        "workspace": agent["ws"], "connection": "billing", "method": "GET", "path": path}))
    assert r.is_error
    assert "invalid_path" in text_of(r) and "hint:" in text_of(r)
    assert upstream_hits(env) == before, "nothing was sent"


def test_a_key_without_proxy_cannot_call_proxy_request(env, agent):
    before = upstream_hits(env)
    r = mcp_call(env, agent["reader"], lambda s: s.call_tool("proxy_request", {
        "workspace": agent["ws"], "connection": "billing", "method": "GET", "path": "/echo"}))
    assert r.is_error
    assert "proxy" in text_of(r) and "hint:" in text_of(r)
    assert upstream_hits(env) == before
    # The same key may still read metadata.
    ok = mcp_call(env, agent["reader"], lambda s: s.call_tool("list_connections", {"workspace": agent["ws"]}))
    assert not ok.is_error


def test_errors_are_tool_errors_with_hints(env, agent):
    async def calls(s: ClientSession):
        return (
            await s.call_tool("get_connection", {"workspace": agent["ws"], "connection": "nope"}),
            await s.call_tool("list_connections", {"workspace": "someone-elses"}),
            await s.call_tool("list_connections", {}),
        )

    missing, other_ws, no_args = mcp_call(env, agent["key"], calls)
    for r in (missing, other_ws, no_args):
        assert r.is_error
    assert "not_found" in text_of(missing) and "nope" in text_of(missing)
    assert "invalid_arguments" in text_of(no_args) and "hint:" in text_of(no_args)


def test_salesforce_through_mcp_with_a_proxy_only_key(env):
    sf = env["salesforce"]
    r = mcp_call(env, sf["proxy_key"], lambda s: s.call_tool("proxy_request", {
        "workspace": sf["workspace"], "connection": sf["connection"], "method": "GET",
        "path": "/services/data/v62.0/query", "query": {"q": "SELECT Id, Name FROM Account"}}))
    assert not r.is_error, text_of(r)
    assert r.structured_content["status"] == 200
    assert r.structured_content["body"]["totalSize"] == 3


def test_mcp_needs_an_api_key(env):
    r = httpx.post(env["url"] + "/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
                   headers={"accept": "application/json, text/event-stream"})
    assert r.status_code == 401
    assert r.json()["error"] == "unauthorized" and r.json()["hint"]
    with pytest.raises(Exception):
        mcp_call(env, "lk_" + "n" * 43, lambda s: s.list_tools())
