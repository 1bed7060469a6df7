"""Verifies one webhook message with the Standard Webhooks reference library.

Reads {"secret", "headers", "body"} as JSON on stdin; exits 0 when the signature verifies,
1 (with the library's error) when it does not.
"""
import json
import sys

from standardwebhooks.webhooks import Webhook

msg = json.load(sys.stdin)
try:
    Webhook(msg["secret"]).verify(msg["body"], msg["headers"])
except Exception as e:  # noqa: BLE001 - any failure is a failed verification
    print(f"{type(e).__name__}: {e}")
    sys.exit(1)
print("verified")
