"""Python client for Latchkey: tokens, the proxy, connections, connect sessions and webhooks.

    from latchkey import Latchkey
    lk = Latchkey()                       # LATCHKEY_URL, LATCHKEY_API_KEY
    tok = lk.token("acme", "sf-prod")     # cached until it is about to expire
    r = lk.proxy("acme", "sf-prod", "GET", "/services/data/v62.0/limits")
"""

from ._client import IDEMPOTENT_METHODS, AsyncLatchkey, Latchkey
from .errors import (
    APIConnectionError,
    APIError,
    AuthenticationError,
    BadRequestError,
    ConflictError,
    LatchkeyError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ServerError,
    ValidationError,
    WebhookVerificationError,
)
from .models import ApiKey, App, Authorization, Connection, ConnectSession, Page, Token, Webhook, WebhookDelivery, Workspace
from .webhooks import sign_webhook, verify_webhook

__version__ = "0.1.0"

__all__ = [
    "Latchkey",
    "AsyncLatchkey",
    "IDEMPOTENT_METHODS",
    "verify_webhook",
    "sign_webhook",
    "LatchkeyError",
    "APIError",
    "APIConnectionError",
    "AuthenticationError",
    "BadRequestError",
    "ConflictError",
    "NotFoundError",
    "PermissionDeniedError",
    "RateLimitError",
    "ServerError",
    "ValidationError",
    "WebhookVerificationError",
    "ApiKey",
    "App",
    "Authorization",
    "Connection",
    "ConnectSession",
    "Page",
    "Token",
    "Webhook",
    "WebhookDelivery",
    "Workspace",
]
