"""verify_webhook agrees with the Standard Webhooks reference library, both ways; and the
webhook endpoints (when this server has them) deliver what verify_webhook accepts."""

from __future__ import annotations

import base64
import json
import os
import queue
import threading
import time
import uuid
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from standardwebhooks.webhooks import Webhook as Reference

from latchkey import WebhookVerificationError, sign_webhook, verify_webhook

from conftest import needs_path

SECRET = "whsec_" + base64.b64encode(os.urandom(24)).decode()
OTHER = "whsec_" + base64.b64encode(os.urandom(24)).decode()
BODY = json.dumps({"type": "connection.created", "timestamp": "2026-11-29T08:00:00Z",
                   "data": {"id": "conn_01", "name": "sf-prod"}})


def reference_headers(secret: str, body: str, at: datetime, msg_id: str = "msg_1") -> dict:
    sig = Reference(secret).sign(msg_id, at, body)
    return {"webhook-id": msg_id, "webhook-timestamp": str(int(at.timestamp())), "webhook-signature": sig}


def test_a_delivery_signed_by_the_reference_library_verifies():
    headers = reference_headers(SECRET, BODY, datetime.now(timezone.utc))
    assert verify_webhook(headers, BODY.encode(), SECRET)["data"]["name"] == "sf-prod"
    # Header names in any case, and several signatures (a secret being rotated).
    mixed = {k.title(): v for k, v in headers.items()}
    mixed["Webhook-Signature"] = "v1,bm90IGl0 " + headers["webhook-signature"]
    assert verify_webhook(mixed, BODY, SECRET)["type"] == "connection.created"


def test_a_delivery_signed_by_us_verifies_with_the_reference_library():
    now = int(time.time())
    headers = {"webhook-id": "msg_2", "webhook-timestamp": str(now),
               "webhook-signature": sign_webhook(SECRET, "msg_2", now, BODY)}
    assert Reference(SECRET).verify(BODY, headers)["data"]["id"] == "conn_01"
    assert headers["webhook-signature"] == Reference(SECRET).sign(
        "msg_2", datetime.fromtimestamp(now, tz=timezone.utc), BODY)


def test_wrong_secret_old_timestamp_and_tampered_body_are_refused():
    now = datetime.now(timezone.utc)
    headers = reference_headers(SECRET, BODY, now)
    with pytest.raises(WebhookVerificationError, match="signature"):
        verify_webhook(headers, BODY, OTHER)
    with pytest.raises(WebhookVerificationError, match="signature"):
        verify_webhook(headers, BODY.replace("sf-prod", "sf-evil"), SECRET)
    old = reference_headers(SECRET, BODY, now - timedelta(minutes=10))
    with pytest.raises(WebhookVerificationError, match="too old"):
        verify_webhook(old, BODY, SECRET)
    future = reference_headers(SECRET, BODY, now + timedelta(minutes=10))
    with pytest.raises(WebhookVerificationError, match="future"):
        verify_webhook(future, BODY, SECRET)
    with pytest.raises(WebhookVerificationError, match="missing"):
        verify_webhook({"webhook-id": "x"}, BODY, SECRET)
    # The reference library refuses the same things.
    for h, b, s in [(headers, BODY, OTHER), (old, BODY, SECRET)]:
        with pytest.raises(Exception):
            Reference(s).verify(b, h)


class _Receiver(BaseHTTPRequestHandler):
    got: "queue.Queue" = queue.Queue()

    def do_POST(self) -> None:  # noqa: N802
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        self.got.put((dict(self.headers.items()), body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


def test_webhook_endpoints_and_a_real_delivery(admin, openapi, env):
    needs_path(openapi, "/v1/workspaces/{ws}/webhooks")
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        slug = "hooks-" + uuid.uuid4().hex[:8]
        admin.workspaces.create(slug)
        hook = admin.webhooks.create(slug, url=f"http://127.0.0.1:{server.server_port}/hook",
                                     events=["connection.*"], description="client test")
        assert hook.secret and hook.secret.startswith("whsec_")
        assert hook.secret not in repr(hook)
        assert [h.id for h in admin.webhooks.list(slug)] == [hook.id]
        assert admin.webhooks.get(slug, hook.id).secret is None, "the secret is shown once"
        assert admin.webhooks.update(slug, hook.id, description="renamed").description == "renamed"

        admin.connections.create(slug, name="hooked", app="generic-api-key", verify=False,
                                 settings={"base_url": env["upstream_url"]}, credentials={"api_key": "k"})
        headers, body = _Receiver.got.get(timeout=30)
        event = verify_webhook(headers, body, hook.secret)
        assert event["type"] == "connection.created"
        with pytest.raises(WebhookVerificationError):
            verify_webhook(headers, body, OTHER)

        deliveries = admin.webhooks.deliveries(slug, hook.id)
        assert len(deliveries) >= 1
        admin.webhooks.retry(slug, hook.id, deliveries.items[0].id)
        rotated = admin.webhooks.rotate_secret(slug, hook.id)
        assert rotated.secret and rotated.secret != hook.secret
        admin.webhooks.delete(slug, hook.id)
        assert len(admin.webhooks.list(slug)) == 0
    finally:
        server.shutdown()


def test_connect_sessions(admin, openapi):
    needs_path(openapi, "/v1/workspaces/{ws}/connect-sessions")
    slug = "connect-" + uuid.uuid4().hex[:8]
    admin.workspaces.create(slug)
    s = admin.connect_sessions.create(slug, end_user={"id": "u-1", "email": "u1@example.com"},
                                      allowed_apps=["generic-api-key"], expires_in_seconds=600)
    assert s.id and s.token and s.connect_url and s.expires_at is not None
    assert s.token not in repr(s)
    got = admin.connect_sessions.get(slug, s.id)
    assert got.id == s.id and got.status == "open" and got.token is None
    assert got.end_user["id"] == "u-1" and got.allowed_apps == ["generic-api-key"]
    assert [x.id for x in admin.connect_sessions.list(slug)] == [s.id]
    admin.connect_sessions.delete(slug, s.id)
