"""A live Latchkey for the tests: the testkit's `clients_fixture` example starts the built
`latchkey serve` (target/debug/latchkey) on a random loopback port with a temporary data folder,
next to the Salesforce simulator and a small REST upstream, and prints what the tests need as
one line of JSON. `LATCHKEY_FIXTURE_BIN` names a prebuilt fixture binary (scripts/test-clients.sh
builds it once for both clients)."""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from pathlib import Path
from typing import Any, Dict, Iterator

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[3]


def _fixture_cmd() -> list:
    prebuilt = os.environ.get("LATCHKEY_FIXTURE_BIN")
    if prebuilt:
        return [prebuilt]
    return ["cargo", "run", "-q", "-p", "latchkey-testkit", "--example", "clients_fixture"]


@pytest.fixture(scope="session")
def env() -> Iterator[Dict[str, Any]]:
    proc = subprocess.Popen(
        _fixture_cmd(), cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None and proc.stdin is not None
    line = proc.stdout.readline()
    if not line:
        proc.wait(timeout=30)
        pytest.fail(f"the clients fixture exited ({proc.returncode}) before printing its environment")
    info = json.loads(line)
    yield info
    proc.stdin.close()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture(scope="session")
def openapi(env: Dict[str, Any]) -> Dict[str, Any]:
    return httpx.get(env["url"] + "/openapi.json").json()


def needs_path(openapi: Dict[str, Any], path: str) -> None:
    """Skips (printing why) when this server does not serve `path` yet."""
    if path not in openapi.get("paths", {}):
        reason = f"this server's /openapi.json has no {path}: the endpoint is not built on this branch yet"
        print(f"SKIP: {reason}")
        pytest.skip(reason)


@pytest.fixture()
def admin(env: Dict[str, Any]):
    from latchkey import Latchkey

    with Latchkey(base_url=env["url"], api_key=env["admin_key"]) as lk:
        yield lk


@pytest.fixture()
def workspace(admin, env: Dict[str, Any]) -> str:
    """A fresh workspace with an API-key connection `billing` to the upstream."""
    slug = "ws-" + uuid.uuid4().hex[:10]
    admin.workspaces.create(slug, name="Client tests")
    admin.connections.create(
        slug,
        name="billing",
        app="generic-api-key",
        settings={"base_url": env["upstream_url"], "verify_path": "/health"},
        credentials={"api_key": env["upstream_api_key"]},
    )
    return slug
