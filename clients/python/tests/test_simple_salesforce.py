"""simple-salesforce, pointed at Latchkey's proxy with a proxy-only key, against the Salesforce
simulator; it survives an expired session because Latchkey refreshes once and retries."""

from __future__ import annotations

import sys
from pathlib import Path

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))

from simple_salesforce_example import salesforce  # noqa: E402


def test_simple_salesforce_through_the_proxy_survives_an_expired_session(env):
    sf_env = env["salesforce"]
    sf = salesforce(env["url"], sf_env["proxy_key"], sf_env["workspace"], sf_env["connection"])

    accounts = sf.query("SELECT Id, Name FROM Account")
    assert accounts["totalSize"] == 3
    assert {r["Name"] for r in accounts["records"]} >= {"Acme Corporation", "Globex"}

    before = httpx.get(env["control_url"] + "/stats").json()["salesforce_refreshes"]
    httpx.post(env["control_url"] + "/expire-sessions")
    limits = sf.limits()
    assert limits["DailyApiRequests"]["Max"] > 0
    after = httpx.get(env["control_url"] + "/stats").json()["salesforce_refreshes"]
    assert after == before + 1, "Latchkey refreshed the expired session exactly once"
    assert sf.query("SELECT Id FROM Contact")["totalSize"] >= 1


def test_the_proxy_only_key_cannot_read_the_token(env):
    from latchkey import Latchkey, PermissionDeniedError

    sf_env = env["salesforce"]
    with Latchkey(base_url=env["url"], api_key=sf_env["proxy_key"]) as lk:
        with pytest.raises(PermissionDeniedError):
            lk.token(sf_env["workspace"], sf_env["connection"])
