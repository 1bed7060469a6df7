"""A loopback OAuth 1.0a provider whose every check is oauthlib's (RFC 5849), for the tests of
Latchkey's `oauth1` and `oauth1_token` modes.

    oauth1_provider.py CONFIG_JSON

CONFIG_JSON: {"clients": {consumer_key: consumer_secret}, "tokens": {token: [consumer_key,
secret]}}. It prints `PORT <n>` once listening on 127.0.0.1, then serves:

- POST .../OAuthGetRequestToken: temporary credentials (RFC 5849 section 2.1);
- GET  .../OAuthAuthorizeToken?oauth_token=...: the resource owner approves at once and is
  sent back to the callback with oauth_token and oauth_verifier (section 2.2);
- POST .../OAuthGetAccessToken: token credentials (section 2.3);
- anything else: a protected resource. A request oauthlib accepts answers 200 with what was
  signed ({"ok", "realm", "signature_method", "query", "form", "token"}); any other 401.
"""

import json
import sys
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from oauthlib.common import generate_token
from oauthlib.oauth1 import (
    AccessTokenEndpoint,
    AuthorizationEndpoint,
    RequestTokenEndpoint,
    RequestValidator,
    ResourceEndpoint,
)
from oauthlib.oauth1.rfc5849 import SIGNATURE_HMAC_SHA1, SIGNATURE_HMAC_SHA256

CONFIG = json.loads(sys.argv[1])
LOCK = threading.Lock()
CLIENTS = dict(CONFIG.get("clients", {}))
ACCESS = {k: tuple(v) for k, v in CONFIG.get("tokens", {}).items()}
# request token -> {"client", "secret", "callback", "verifier"}
PENDING = {}
NONCES = set()
LOG = []


class Validator(RequestValidator):
    """Every lookup against the tables above; the signature, timestamp and parameter checks are
    oauthlib's own."""

    enforce_ssl = False

    @property
    def allowed_signature_methods(self):
        return (SIGNATURE_HMAC_SHA1, SIGNATURE_HMAC_SHA256)

    # NetSuite's keys are 64 hex characters, Trello's 32: wider than oauthlib's defaults.
    def _ok(self, s, lo=8, hi=128):
        return isinstance(s, str) and lo <= len(s) <= hi and all(
            c.isalnum() or c in "-_" for c in s
        )

    def check_client_key(self, client_key):
        return self._ok(client_key)

    def check_request_token(self, token):
        return self._ok(token)

    def check_access_token(self, token):
        return self._ok(token)

    def check_verifier(self, verifier):
        return self._ok(verifier)

    def check_realms(self, realms):
        return True

    @property
    def dummy_client(self):
        return "dummyclientkey0000000000"

    @property
    def dummy_request_token(self):
        return "dummyrequesttoken0000000"

    @property
    def dummy_access_token(self):
        return "dummyaccesstoken00000000"

    def get_client_secret(self, client_key, request):
        return CLIENTS.get(client_key, "dummy-secret")

    def validate_client_key(self, client_key, request):
        return client_key in CLIENTS

    def get_default_realms(self, client_key, request):
        return []

    def validate_requested_realms(self, client_key, realms, request):
        return True

    def validate_redirect_uri(self, client_key, redirect_uri, request):
        return redirect_uri.startswith("http://127.0.0.1:")

    def validate_timestamp_and_nonce(
        self, client_key, timestamp, nonce, request, request_token=None, access_token=None
    ):
        key = (client_key, timestamp, nonce, request_token or access_token)
        with LOCK:
            if key in NONCES:
                return False
            NONCES.add(key)
        return True

    def save_request_token(self, token, request):
        with LOCK:
            PENDING[token["oauth_token"]] = {
                "client": request.client_key,
                "secret": token["oauth_token_secret"],
                "callback": request.redirect_uri,
                "verifier": None,
            }

    def verify_request_token(self, token, request):
        return token in PENDING

    def get_realms(self, token, request):
        return []

    def get_redirect_uri(self, token, request):
        return PENDING[token]["callback"]

    def save_verifier(self, token, verifier, request):
        with LOCK:
            PENDING[token]["verifier"] = verifier["oauth_verifier"]

    def validate_request_token(self, client_key, token, request):
        p = PENDING.get(token)
        return p is not None and p["client"] == client_key

    def get_request_token_secret(self, client_key, token, request):
        p = PENDING.get(token)
        return p["secret"] if p else "dummy-secret"

    def validate_verifier(self, client_key, token, verifier, request):
        p = PENDING.get(token)
        return p is not None and p["verifier"] == verifier

    def invalidate_request_token(self, client_key, request_token, request):
        with LOCK:
            PENDING.pop(request_token, None)

    def save_access_token(self, token, request):
        with LOCK:
            ACCESS[token["oauth_token"]] = (request.client_key, token["oauth_token_secret"])

    def validate_access_token(self, client_key, token, request):
        a = ACCESS.get(token)
        return a is not None and a[0] == client_key

    def get_access_token_secret(self, client_key, token, request):
        a = ACCESS.get(token)
        return a[1] if a else "dummy-secret"

    def validate_realms(self, client_key, token, request, uri=None, realms=None):
        return True

    def verify_realms(self, token, realms, request):
        return True


VALIDATOR = Validator()
REQUEST = RequestTokenEndpoint(VALIDATOR)
AUTHORIZE = AuthorizationEndpoint(VALIDATOR)
ACCESS_EP = AccessTokenEndpoint(VALIDATOR)
RESOURCE = ResourceEndpoint(VALIDATOR)


def realm_of(header):
    if not header or not header.startswith("OAuth "):
        return None
    for part in header[6:].split(","):
        k, _, v = part.strip().partition("=")
        if k == "realm":
            return urllib.parse.unquote(v.strip('"'))
    return None


def method_of(header):
    for part in (header or "").replace("OAuth ", "", 1).split(","):
        k, _, v = part.strip().partition("=")
        if k == "oauth_signature_method":
            return urllib.parse.unquote(v.strip('"'))
    return None


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def _answer(self, status, body, headers=None, ctype="application/json"):
        data = body if isinstance(body, bytes) else body.encode()
        self.send_response(status)
        for k, v in (headers or {}).items():
            if k.lower() != "content-type":
                self.send_header(k, v)
        self.send_header("Content-Type", (headers or {}).get("Content-Type", ctype))
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _handle(self):
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        uri = "http://%s%s" % (self.headers["Host"], self.path)
        headers = {k: v for k, v in self.headers.items()}
        body = raw.decode("utf-8", "replace") if raw else None
        path = urllib.parse.urlsplit(self.path).path
        with LOCK:
            LOG.append({"method": self.command, "path": path})
        if path == "/__log":
            return self._answer(200, json.dumps(LOG))
        if path.endswith("/OAuthGetRequestToken"):
            h, b, s = REQUEST.create_request_token_response(uri, self.command, body, headers)
            return self._answer(s, b or "", h, "application/x-www-form-urlencoded")
        if path.endswith("/OAuthAuthorizeToken"):
            # The resource owner approves at once.
            h, b, s = AUTHORIZE.create_authorization_response(uri, self.command, body, headers)
            return self._answer(s, b or "", h, "text/plain")
        if path.endswith("/OAuthGetAccessToken"):
            h, b, s = ACCESS_EP.create_access_token_response(uri, self.command, body, headers)
            return self._answer(s, b or "", h, "application/x-www-form-urlencoded")
        ok, req = RESOURCE.validate_protected_resource_request(uri, self.command, body, headers)
        if not ok:
            return self._answer(
                401,
                json.dumps({"error": "invalid_signature", "message": "oauthlib refused the request"}),
                {"WWW-Authenticate": 'OAuth realm="loopback"'},
            )
        form = {}
        if (self.headers.get("Content-Type") or "").startswith("application/x-www-form-urlencoded"):
            form = dict(urllib.parse.parse_qsl(body or "", keep_blank_values=True))
        answer = {
            "ok": True,
            "method": self.command,
            "path": path,
            "query": dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(self.path).query, keep_blank_values=True)),
            "form": form,
            "json": json.loads(body) if (self.headers.get("Content-Type") or "").startswith("application/json") and body else None,
            "realm": realm_of(self.headers.get("Authorization")),
            "signature_method": method_of(self.headers.get("Authorization")),
            "token": req.resource_owner_key,
        }
        return self._answer(200, json.dumps(answer))

    do_GET = _handle
    do_POST = _handle
    do_PUT = _handle
    do_DELETE = _handle
    do_PATCH = _handle


def main():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    print("PORT %d" % server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
