"""A loopback upstream that checks AWS Signature Version 4 the way AWS does, with botocore
computing the expected signature, for the tests of Latchkey's `aws_sigv4` mode.

    sigv4_upstream.py CONFIG_JSON

CONFIG_JSON: {"keys": {access_key_id: {"secret": ..., "session_token": ... | null}}}. It prints
`PORT <n>` once listening on 127.0.0.1. Every request must carry an Authorization header whose
key is known, whose region and service are the scope's, whose x-amz-content-sha256 is the
SHA-256 of the body received, with x-amz-security-token when the key has a session token, and
whose signature equals the one botocore computes over the headers it names. Such a request
answers 200 with what was signed ({"ok", "service", "region", "path", "query", "body"});
any other 403 with an AWS-style error code.
"""

import hashlib
import json
import sys
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from botocore.auth import S3SigV4Auth, SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

CONFIG = json.loads(sys.argv[1])
KEYS = CONFIG["keys"]


def parse_auth(header):
    # AWS4-HMAC-SHA256 Credential=AKID/20250101/us-east-1/s3/aws4_request, SignedHeaders=a;b, Signature=hex
    if not header.startswith("AWS4-HMAC-SHA256 "):
        return None
    fields = {}
    for part in header[len("AWS4-HMAC-SHA256 "):].split(","):
        k, _, v = part.strip().partition("=")
        fields[k] = v
    try:
        akid, date, region, service, term = fields["Credential"].split("/")
    except (KeyError, ValueError):
        return None
    if term != "aws4_request":
        return None
    return {
        "akid": akid,
        "date": date,
        "region": region,
        "service": service,
        "signed": fields.get("SignedHeaders", "").split(";"),
        "signature": fields.get("Signature", ""),
    }


def aws_query(raw):
    """The query as AWS reads it: decoded, then encoded again per RFC 3986."""
    pairs = urllib.parse.parse_qsl(raw, keep_blank_values=True)
    return urllib.parse.urlencode(pairs, quote_via=urllib.parse.quote, safe="-_.~")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def _answer(self, status, doc):
        data = json.dumps(doc).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _refuse(self, code, message):
        # As AWS's query and REST-XML services answer.
        data = (
            '<?xml version="1.0" encoding="UTF-8"?>\n<ErrorResponse><Error><Type>Sender</Type>'
            "<Code>%s</Code><Message>%s</Message></Error></ErrorResponse>" % (code, message)
        ).encode()
        self.send_response(403)
        self.send_header("Content-Type", "text/xml")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _handle(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        auth = parse_auth(self.headers.get("Authorization") or "")
        if auth is None:
            return self._refuse("MissingAuthenticationToken", "no SigV4 Authorization header")
        key = KEYS.get(auth["akid"])
        if key is None:
            return self._refuse("InvalidClientTokenId", "the access key is not known")
        token = self.headers.get("x-amz-security-token")
        if key.get("session_token") and token != key["session_token"]:
            return self._refuse("InvalidToken", "the session token is missing or wrong")
        amz_date = self.headers.get("x-amz-date") or ""
        if not amz_date.startswith(auth["date"]):
            return self._refuse("IncompleteSignature", "x-amz-date does not match the scope")
        payload = self.headers.get("x-amz-content-sha256") or ""
        if payload != "UNSIGNED-PAYLOAD" and payload != hashlib.sha256(body).hexdigest():
            return self._refuse("XAmzContentSHA256Mismatch", "the body hash does not match")
        split = urllib.parse.urlsplit(self.path)
        url = "http://%s%s" % (self.headers["Host"], split.path)
        query = aws_query(split.query)
        if query:
            url += "?" + query
        headers = {}
        for name in auth["signed"]:
            value = self.headers.get(name)
            if value is None:
                return self._refuse("IncompleteSignature", "signed header %s is absent" % name)
            headers[name] = value
        request = AWSRequest(method=self.command, url=url, headers=headers, data=body)
        request.context["timestamp"] = amz_date
        creds = Credentials(auth["akid"], key["secret"], key.get("session_token"))
        signer_class = S3SigV4Auth if auth["service"] == "s3" else SigV4Auth
        signer = signer_class(creds, auth["service"], auth["region"])
        # Only the headers the client signed, in its own list.
        signer.headers_to_sign = lambda req: _only(req, auth["signed"])
        canonical = signer.canonical_request(request)
        expected = signer.signature(signer.string_to_sign(request, canonical), request)
        if expected != auth["signature"]:
            return self._refuse(
                "SignatureDoesNotMatch",
                "The request signature we calculated does not match the signature you provided.",
            )
        self._answer(
            200,
            {
                "ok": True,
                "service": auth["service"],
                "region": auth["region"],
                "method": self.command,
                "path": split.path,
                "query": dict(urllib.parse.parse_qsl(split.query, keep_blank_values=True)),
                "body": body.decode("utf-8", "replace"),
                "session_token": token is not None,
            },
        )

    do_GET = _handle
    do_POST = _handle
    do_PUT = _handle
    do_DELETE = _handle
    do_HEAD = _handle


def _only(request, names):
    from botocore.awsrequest import HTTPHeaders

    out = HTTPHeaders()
    for name in names:
        out[name] = request.headers[name]
    return out


def main():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    print("PORT %d" % server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
