"""Typed answers, written against Latchkey's OpenAPI document (``/openapi.json``; a test checks
every field here against it). Fields the server adds later are kept in ``extra`` rather than
refused, so an older client keeps working with a newer server."""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Any, Callable, Dict, Generic, List, Optional, Type, TypeVar

T = TypeVar("T", bound="Model")


def parse_time(value: Any) -> Optional[datetime]:
    """An RFC 3339 timestamp as an aware ``datetime`` (``None`` stays ``None``)."""
    if value is None or isinstance(value, datetime):
        return value
    text = str(value)
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    # Python before 3.11 accepts at most 6 fraction digits.
    if "." in text:
        head, _, rest = text.partition(".")
        digits = ""
        while rest and rest[0].isdigit():
            digits, rest = digits + rest[0], rest[1:]
        text = f"{head}.{digits[:6].ljust(6, '0')}{rest}"
    return datetime.fromisoformat(text)


_TIME_FIELDS = {
    "created_at",
    "updated_at",
    "verified_at",
    "expires_at",
    "authorized_at",
    "refreshed_at",
    "revoked_at",
    "last_used_at",
    "at",
    "next_attempt_at",
    "delivered_at",
    "last_checked_at",
    "last_ok_at",
    "next_check_at",
    "completed_at",
    "cancelled_at",
    "failing_since",
    "previous_secret_until",
    "last_attempt_at",
}


@dataclasses.dataclass
class Model:
    """Base of every answer model."""

    @classmethod
    def from_dict(cls: Type[T], data: Dict[str, Any]) -> T:
        known = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        kwargs: Dict[str, Any] = {}
        for name in known:
            if name in data:
                value = data[name]
                if name in _TIME_FIELDS:
                    value = parse_time(value)
                sub = _NESTED.get((cls.__name__, name))
                if sub is not None and isinstance(value, dict):
                    value = sub.from_dict(value)
                kwargs[name] = value
        obj = cls(**kwargs)
        obj.extra = {k: v for k, v in data.items() if k not in known}
        return obj


@dataclasses.dataclass
class Authorization(Model):
    """The non-secret facts of an OAuth connection's grant."""

    username: Optional[str] = None
    user_id: Optional[str] = None
    org_id: Optional[str] = None
    instance_url: Optional[str] = None
    scope: Optional[str] = None
    client_id: Optional[str] = None
    has_refresh_token: bool = False
    authorized_at: Optional[datetime] = None
    expires_at: Optional[datetime] = None
    refreshed_at: Optional[datetime] = None
    extra: Dict[str, Any] = dataclasses.field(default_factory=dict, repr=False)


@dataclasses.dataclass
class Connection(Model):
    """A connection: never a secret value, only the names of its stored secret fields."""

    id: str = ""
    name: str = ""
    app: str = ""
    environment: str = ""
    auth_mode: str = ""
    status: str = ""
    status_reason: Optional[str] = None
    hint: Optional[str] = None
    settings: Dict[str, Any] = dataclasses.field(default_factory=dict)
    credential_fields: List[str] = dataclasses.field(default_factory=list)
    warnings: List[str] = dataclasses.field(default_factory=list)
    authorize_url: Optional[str] = None
    created_at: Optional[datetime] = None
    updated_at: Optional[datetime] = None
    verified_at: Optional[datetime] = None
    version: int = 0
    effective_concurrency_level: Optional[int] = None
    authorization: Optional[Authorization] = None
    extra: Dict[str, Any] = dataclasses.field(default_factory=dict, repr=False)


@dataclasses.dataclass
class Token(Model):
    """A fresh access token. ``repr`` never shows the token itself."""

    access_token: str = dataclasses.field(default="", repr=False)
    token_type: str = "Bearer"
    expires_at: Optional[datetime] = None
    instance_url: Optional[str] = None
    scope: Optional[str] = None
    extra: Dict[str, Any] = dataclasses.field(default_factory=dict, repr=False)


@dataclasses.dataclass
class App(Model):
    """A catalog entry."""

    id: str = ""
    name: str = ""
    description: str = ""
    category: str = ""
    categories: List[str] = dataclasses.field(default_factory=list)
    brand_color: str = ""
    monogram: str = ""
    auth_modes: List[str] = dataclasses.field(default_factory=list)
    headers: Dict[str, str] = dataclasses.field(default_factory=dict)
    quirks: List[str] = dataclasses.field(default_factory=list)
    base_url: Optional[str] = None
    settings: List[Dict[str, Any]] = dataclasses.field(default_factory=list)
    credentials: List[Dict[str, Any]] = dataclasses.field(default_factory=list)
    docs_url: Optional[str] = None
    connection_count: Optional[int] = None
    extra: Dict[str, Any] = dataclasses.field(default_factory=dict, repr=False)


@dataclasses.dataclass
class Workspace(Model):
    id: str = ""
    slug: str = ""
    name: str = ""
    created_at: Optional[datetime] = None
    updated_at: Optional[datetime] = None
    extra: Dict[str, Any] = dataclasses.field(default_factory=dict, repr=False)


@dataclasses.dataclass
class ApiKey(Model):
    """An API key. ``key`` is only set in the answer that created it."""

    id: str = ""
    name: str = ""
    workspace: Optional[str] = None
    scopes: List[str] = dataclasses.field(default_factory=list)
    prefix: str = ""
    key: Optional[str] = dataclasses.field(default=None, repr=False)
    created_at: Optional[datetime] = None
    revoked_at: Optional[datetime] = None
    extra: Dict[str, Any] = dataclasses.field(default_factory=dict, repr=False)


@dataclasses.dataclass
class ConnectSession(Model):
    """A connect session: the link an end user opens to connect their own account. ``token`` and
    ``connect_url`` are only in the answer that created it."""

    id: str = ""
    token: Optional[str] = dataclasses.field(default=None, repr=False)
    connect_url: Optional[str] = dataclasses.field(default=None, repr=False)
    expires_at: Optional[datetime] = None
    status: Optional[str] = None
    end_user: Optional[Dict[str, Any]] = None
    organization: Optional[Dict[str, Any]] = None
    allowed_apps: List[str] = dataclasses.field(default_factory=list)
    environment: Optional[str] = None
    reconnect_connection_id: Optional[str] = None
    connection_id: Optional[str] = None
    allowed_origins: List[str] = dataclasses.field(default_factory=list)
    created_at: Optional[datetime] = None
    completed_at: Optional[datetime] = None
    cancelled_at: Optional[datetime] = None
    extra: Dict[str, Any] = dataclasses.field(default_factory=dict, repr=False)


@dataclasses.dataclass
class Webhook(Model):
    """A webhook endpoint. ``secret`` (``whsec_…``) is only set when created or rotated."""

    id: str = ""
    url: str = ""
    events: List[str] = dataclasses.field(default_factory=list)
    description: Optional[str] = None
    enabled: bool = True
    disabled_reason: Optional[str] = None
    failing_since: Optional[datetime] = None
    previous_secret_until: Optional[datetime] = None
    secret: Optional[str] = dataclasses.field(default=None, repr=False)
    created_at: Optional[datetime] = None
    updated_at: Optional[datetime] = None
    extra: Dict[str, Any] = dataclasses.field(default_factory=dict, repr=False)


@dataclasses.dataclass
class WebhookDelivery(Model):
    """One event's delivery to one webhook; ``id`` is the ``webhook-id`` header of every attempt."""

    id: str = ""
    webhook_id: Optional[str] = None
    event_id: Optional[str] = None
    event_type: Optional[str] = None
    status: Optional[str] = None
    attempts: int = 0
    next_attempt_at: Optional[datetime] = None
    last_attempt_at: Optional[datetime] = None
    last_status_code: Optional[int] = None
    last_error: Optional[str] = None
    created_at: Optional[datetime] = None
    payload: Optional[Dict[str, Any]] = None
    extra: Dict[str, Any] = dataclasses.field(default_factory=dict, repr=False)


_NESTED: Dict[Any, Type[Model]] = {("Connection", "authorization"): Authorization}

M = TypeVar("M", bound=Model)


@dataclasses.dataclass
class Page(Generic[M]):
    """One page of a list: ``items`` and the cursor of the next page (``None`` on the last)."""

    items: List[M]
    next_cursor: Optional[str] = None

    @classmethod
    def parse(cls, data: Dict[str, Any], item: Callable[[Dict[str, Any]], M]) -> "Page[M]":
        return cls([item(x) for x in data.get("items") or []], data.get("next_cursor"))

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)
