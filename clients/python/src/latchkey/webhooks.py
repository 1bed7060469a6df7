"""Checking webhook deliveries: Latchkey signs them the Standard Webhooks way. The signed content
is ``{webhook-id}.{webhook-timestamp}.{raw body}``, signed with HMAC-SHA256 under the secret
(``whsec_`` followed by the base64 of the key); ``webhook-signature`` is a space-separated list of
``v1,<base64 signature>`` (several while a secret is being rotated)."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from typing import Any, Mapping, Optional, Union

from .errors import WebhookVerificationError

#: How far a delivery's timestamp may be from now, in seconds (replayed old deliveries are refused).
DEFAULT_TOLERANCE = 300


def _header(headers: Any, name: str) -> Optional[str]:
    getter = getattr(headers, "get", None)
    if getter is not None:
        value = getter(name)
        if value is None:
            for k in headers:
                if str(k).lower() == name:
                    value = headers[k]
                    break
        return None if value is None else str(value)
    return None


def _key(secret: str) -> bytes:
    raw = secret[len("whsec_"):] if secret.startswith("whsec_") else secret
    try:
        return base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError) as e:
        raise WebhookVerificationError("the webhook secret is not `whsec_` followed by base64") from e


def sign_webhook(secret: str, msg_id: str, timestamp: int, body: Union[bytes, str]) -> str:
    """The ``webhook-signature`` value for a delivery (``v1,<base64>``)."""
    raw = body.encode() if isinstance(body, str) else body
    signed = f"{msg_id}.{timestamp}.".encode() + raw
    digest = hmac.new(_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def verify_webhook(
    headers: Mapping[str, Any],
    body: Union[bytes, str],
    secret: str,
    *,
    tolerance: int = DEFAULT_TOLERANCE,
    now: Optional[float] = None,
) -> Any:
    """Checks a delivery and answers its parsed JSON body (``{"type", "timestamp", "data"}``).

    ``body`` must be the raw request body, exactly as received. Raises
    :class:`~latchkey.errors.WebhookVerificationError` when a header is missing, the timestamp
    is more than ``tolerance`` seconds away from now, or no signature matches."""
    msg_id = _header(headers, "webhook-id")
    ts = _header(headers, "webhook-timestamp")
    sigs = _header(headers, "webhook-signature")
    if not msg_id or not ts or not sigs:
        raise WebhookVerificationError("missing webhook-id, webhook-timestamp or webhook-signature header")
    try:
        timestamp = int(ts)
    except ValueError as e:
        raise WebhookVerificationError("webhook-timestamp is not a number of seconds") from e
    current = time.time() if now is None else now
    if timestamp < current - tolerance:
        raise WebhookVerificationError("the delivery's timestamp is too old")
    if timestamp > current + tolerance:
        raise WebhookVerificationError("the delivery's timestamp is in the future")
    expected = sign_webhook(secret, msg_id, timestamp, body).split(",", 1)[1]
    for candidate in sigs.split():
        version, _, value = candidate.partition(",")
        if version == "v1" and hmac.compare_digest(value.encode(), expected.encode()):
            raw = body.decode() if isinstance(body, bytes) else body
            try:
                return json.loads(raw)
            except ValueError as e:
                raise WebhookVerificationError("the delivery's body is not JSON") from e
    raise WebhookVerificationError("no signature matches: wrong secret, or the body was changed")
