"""A loopback stand-in for Google's OAuth 2.0 token endpoint and one Google API, checking
Latchkey's service-account assertions with PyJWT and cryptography (code nobody here wrote).

It makes an RSA key pair, prints one JSON line on stdout ({"port", "private_key",
"private_key_id", "client_email"}) and then serves:

* POST /token: grant_type urn:ietf:params:oauth:grant-type:jwt-bearer; the assertion must be
  RS256-signed by the key pair's private key, with the key's kid, iss = client_email,
  aud = the token URI given on the command line, the expected scope, exp and iat (at most an
  hour apart), and no sub or the one SUBJECT allowed (domain-wide delegation). Answers a fresh access token living
  LIFETIME seconds, or 400 invalid_grant with the reason.
* GET /api/...: 200 with the caller's account when the bearer token is one it issued and has
  not expired, else 401 with WWW-Authenticate: Bearer error="invalid_token".
* GET /stats: {"exchanges": n, "refused": [reasons]}.

Usage: google_token.py TOKEN_URI SCOPE LIFETIME [SUBJECT]
The API answers who the token acts for (the subject, or the account), so a test sees sub.
"""
import json
import secrets
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

TOKEN_URI, SCOPE, LIFETIME = sys.argv[1], sys.argv[2], int(sys.argv[3])
SUBJECT = sys.argv[4] if len(sys.argv) > 4 else None
CLIENT_EMAIL = "etl-reader@latchkey-test.iam.gserviceaccount.com"
KEY_ID = secrets.token_hex(20)

private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
PUBLIC = private.public_key()
PRIVATE_PEM = private.private_bytes(
    serialization.Encoding.PEM,
    serialization.PrivateFormat.PKCS8,
    serialization.NoEncryption(),
).decode()

lock = threading.Lock()
issued = {}  # token -> (expires at, who)
stats = {"exchanges": 0, "refused": []}


def check_assertion(assertion):
    header = jwt.get_unverified_header(assertion)
    if header.get("alg") != "RS256":
        raise ValueError("alg must be RS256")
    if header.get("kid") != KEY_ID:
        raise ValueError("kid is not the key's id")
    claims = jwt.decode(
        assertion,
        PUBLIC,
        algorithms=["RS256"],
        audience=TOKEN_URI,
        issuer=CLIENT_EMAIL,
        options={"require": ["exp", "iat", "iss", "aud"]},
    )
    if claims["exp"] - claims["iat"] > 3600:
        raise ValueError("the assertion lives more than an hour")
    if claims.get("scope") != SCOPE:
        raise ValueError(f"scope {claims.get('scope')!r} is not {SCOPE!r}")
    if claims.get("sub") not in (None, SUBJECT):
        raise ValueError(f"sub {claims.get('sub')!r} is not {SUBJECT!r}")
    return claims.get("sub") or claims["iss"]


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def answer(self, status, doc, headers=()):
        body = json.dumps(doc).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        length = int(self.headers.get("content-length") or 0)
        form = dict(urllib.parse.parse_qsl(self.rfile.read(length).decode()))
        if self.path != "/token":
            return self.answer(404, {"error": "not_found"})
        if form.get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer":
            return self.answer(400, {"error": "unsupported_grant_type"})
        try:
            who = check_assertion(form.get("assertion", ""))
        except Exception as e:  # noqa: BLE001 - every refusal is an invalid_grant
            with lock:
                stats["refused"].append(f"{type(e).__name__}: {e}")
            return self.answer(400, {"error": "invalid_grant", "error_description": "Invalid JWT Signature."})
        token = "ya29." + secrets.token_urlsafe(32)
        with lock:
            stats["exchanges"] += 1
            issued[token] = (time.time() + LIFETIME, who)
        self.answer(200, {"access_token": token, "expires_in": LIFETIME, "token_type": "Bearer"})

    def do_GET(self):
        if self.path == "/stats":
            with lock:
                return self.answer(200, dict(stats))
        auth = self.headers.get("authorization", "")
        token = auth[len("Bearer "):] if auth.startswith("Bearer ") else ""
        with lock:
            found = issued.get(token)
        if found is None or found[0] < time.time():
            return self.answer(
                401,
                {"error": {"code": 401, "status": "UNAUTHENTICATED"}},
                [("www-authenticate", 'Bearer realm="https://accounts.google.com/", error="invalid_token"')],
            )
        self.answer(200, {"kind": "bigquery#projectList", "caller": found[1], "path": self.path})


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print(
    json.dumps(
        {
            "port": server.server_address[1],
            "private_key": PRIVATE_PEM,
            "private_key_id": KEY_ID,
            "client_email": CLIENT_EMAIL,
        }
    ),
    flush=True,
)
server.serve_forever()
