"""Typed errors. Every error Latchkey answers has the shape
``{"error": code, "message": text, "hint": text | null, "details": {...}}``; the client raises the
subclass that matches the status code, carrying those fields."""

from __future__ import annotations

from typing import Any, Dict, Optional

import httpx


class LatchkeyError(Exception):
    """Base class of every error this client raises."""


class APIError(LatchkeyError):
    """Latchkey answered with an error."""

    def __init__(
        self,
        status_code: int,
        error: str,
        message: str,
        hint: Optional[str] = None,
        details: Optional[Dict[str, Any]] = None,
        response: Optional[httpx.Response] = None,
    ) -> None:
        self.status_code = status_code
        self.error = error
        self.message = message
        self.hint = hint
        self.details = details or {}
        self.response = response
        text = f"{status_code} {error}: {message}"
        if hint:
            text += f" (hint: {hint})"
        super().__init__(text)


class BadRequestError(APIError):
    """400: the request could not be read."""


class AuthenticationError(APIError):
    """401: no API key, or an unknown or revoked one."""


class PermissionDeniedError(APIError):
    """403: the key lacks a scope, or may not do this."""


class NotFoundError(APIError):
    """404: it does not exist, or it is in another workspace."""


class ConflictError(APIError):
    """409: a duplicate name, or a connection still used by an active flow."""


class ValidationError(APIError):
    """422: invalid input, or a failed verification (nothing was stored)."""


class RateLimitError(APIError):
    """429: too many requests (or failed sign-ins) from this address."""


class ServerError(APIError):
    """5xx: Latchkey or an application it had to reach failed."""


class APIConnectionError(LatchkeyError):
    """Latchkey could not be reached (after the retries allowed for the request)."""

    def __init__(self, message: str, cause: Optional[BaseException] = None) -> None:
        self.cause = cause
        super().__init__(message)


class WebhookVerificationError(LatchkeyError):
    """A webhook delivery's signature or timestamp did not check out."""


_BY_STATUS = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    422: ValidationError,
    429: RateLimitError,
}


def error_from_response(response: httpx.Response) -> APIError:
    """The typed error for an error answer of Latchkey."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        body = {}
    status = response.status_code
    cls = _BY_STATUS.get(status, ServerError if status >= 500 else APIError)
    return cls(
        status,
        str(body.get("error") or f"http_{status}"),
        str(body.get("message") or response.reason_phrase or "request failed"),
        body.get("hint"),
        body.get("details") if isinstance(body.get("details"), dict) else {},
        response,
    )
