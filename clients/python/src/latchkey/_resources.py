"""The resources (``connections``, ``connect_sessions``, ``webhooks``, …), written once for both
clients: each method describes its request and hands it to the client's ``_call``, which runs it
(``Latchkey``) or returns an awaitable (``AsyncLatchkey``)."""

from __future__ import annotations

from typing import Any, Dict, List, Optional
from urllib.parse import quote

from .models import ApiKey, App, Connection, ConnectSession, Page, Webhook, WebhookDelivery, Workspace


def seg(value: str) -> str:
    """One path segment, percent-encoded (connection names may hold spaces and more)."""
    return quote(str(value), safe="")


def _body(**fields: Any) -> Dict[str, Any]:
    return {k: v for k, v in fields.items() if v is not None}


class _Resource:
    def __init__(self, client: Any) -> None:
        self._c = client


class Connections(_Resource):
    """``/v1/workspaces/{ws}/connections``."""

    def list(
        self,
        workspace: str,
        *,
        app: Optional[str] = None,
        environment: Optional[str] = None,
        status: Optional[str] = None,
        limit: Optional[int] = None,
        cursor: Optional[str] = None,
        **filters: Any,
    ) -> Any:
        """One page of the workspace's connections (``Page[Connection]``)."""
        params = _body(app=app, environment=environment, status=status, limit=limit, cursor=cursor, **filters)
        return self._c._call(
            "GET",
            f"/v1/workspaces/{seg(workspace)}/connections",
            params=params,
            parse=lambda d: Page.parse(d, Connection.from_dict),
        )

    def get(self, workspace: str, connection: str) -> Any:
        """One connection by name or id (``Connection``)."""
        return self._c._call(
            "GET", f"/v1/workspaces/{seg(workspace)}/connections/{seg(connection)}", parse=Connection.from_dict
        )

    def create(
        self,
        workspace: str,
        *,
        name: str,
        app: str,
        auth_mode: Optional[str] = None,
        environment: Optional[str] = None,
        settings: Optional[Dict[str, Any]] = None,
        credentials: Optional[Dict[str, Any]] = None,
        verify: Optional[bool] = None,
        **extra: Any,
    ) -> Any:
        """Creates a connection, verified first unless ``verify=False`` (``Connection``).
        An ``oauth2_code`` connection comes back ``pending_authorization`` with ``authorize_url``."""
        body = _body(
            name=name,
            app=app,
            auth_mode=auth_mode,
            environment=environment,
            settings=settings,
            credentials=credentials,
            verify=verify,
            **extra,
        )
        return self._c._call(
            "POST", f"/v1/workspaces/{seg(workspace)}/connections", json=body, parse=Connection.from_dict
        )

    def update(self, workspace: str, connection: str, **fields: Any) -> Any:
        """Edits a connection (``name``, ``environment``, ``auth_mode``, ``settings``,
        ``credentials``, ``verify``); settings and credentials merge onto the stored ones."""
        return self._c._call(
            "PATCH",
            f"/v1/workspaces/{seg(workspace)}/connections/{seg(connection)}",
            json=fields,
            parse=Connection.from_dict,
        )

    def delete(self, workspace: str, connection: str) -> Any:
        return self._c._call(
            "DELETE", f"/v1/workspaces/{seg(workspace)}/connections/{seg(connection)}", parse=lambda d: None
        )

    def verify(self, workspace: str, connection: str) -> Any:
        """Checks the connection against its application now (``Connection``, with its new status)."""
        return self._c._call(
            "POST",
            f"/v1/workspaces/{seg(workspace)}/connections/{seg(connection)}/verify",
            parse=lambda d: Connection.from_dict(d.get("connection", d)),
        )


class ConnectSessions(_Resource):
    """``/v1/workspaces/{ws}/connect-sessions``: links for end users to connect their own accounts."""

    def create(
        self,
        workspace: str,
        *,
        end_user: Dict[str, Any],
        organization: Optional[Dict[str, Any]] = None,
        allowed_apps: Optional[List[str]] = None,
        environment: Optional[str] = None,
        connection: Optional[str] = None,
        allowed_origins: Optional[List[str]] = None,
        expires_in_seconds: Optional[int] = None,
        **extra: Any,
    ) -> Any:
        body = _body(
            end_user=end_user,
            organization=organization,
            allowed_apps=allowed_apps,
            environment=environment,
            connection=connection,
            allowed_origins=allowed_origins,
            expires_in_seconds=expires_in_seconds,
            **extra,
        )
        return self._c._call(
            "POST", f"/v1/workspaces/{seg(workspace)}/connect-sessions", json=body, parse=ConnectSession.from_dict
        )

    def list(self, workspace: str, *, limit: Optional[int] = None, cursor: Optional[str] = None) -> Any:
        return self._c._call(
            "GET",
            f"/v1/workspaces/{seg(workspace)}/connect-sessions",
            params=_body(limit=limit, cursor=cursor),
            parse=lambda d: Page.parse(d, ConnectSession.from_dict),
        )

    def get(self, workspace: str, session_id: str) -> Any:
        return self._c._call(
            "GET",
            f"/v1/workspaces/{seg(workspace)}/connect-sessions/{seg(session_id)}",
            parse=ConnectSession.from_dict,
        )

    def delete(self, workspace: str, session_id: str) -> Any:
        return self._c._call(
            "DELETE", f"/v1/workspaces/{seg(workspace)}/connect-sessions/{seg(session_id)}", parse=lambda d: None
        )


class Webhooks(_Resource):
    """``/v1/workspaces/{ws}/webhooks``: event deliveries signed the Standard Webhooks way."""

    def create(
        self,
        workspace: str,
        *,
        url: str,
        events: Optional[List[str]] = None,
        description: Optional[str] = None,
        enabled: Optional[bool] = None,
    ) -> Any:
        """Creates a webhook (``events`` default: every event); the answer's ``secret`` is shown
        this once."""
        body = _body(url=url, events=events, description=description, enabled=enabled)
        return self._c._call("POST", f"/v1/workspaces/{seg(workspace)}/webhooks", json=body, parse=Webhook.from_dict)

    def list(self, workspace: str, *, limit: Optional[int] = None, cursor: Optional[str] = None) -> Any:
        return self._c._call(
            "GET",
            f"/v1/workspaces/{seg(workspace)}/webhooks",
            params=_body(limit=limit, cursor=cursor),
            parse=lambda d: Page.parse(d, Webhook.from_dict),
        )

    def get(self, workspace: str, webhook_id: str) -> Any:
        return self._c._call(
            "GET", f"/v1/workspaces/{seg(workspace)}/webhooks/{seg(webhook_id)}", parse=Webhook.from_dict
        )

    def update(self, workspace: str, webhook_id: str, **fields: Any) -> Any:
        """Edits ``url``, ``events``, ``description`` or ``enabled``."""
        return self._c._call(
            "PATCH",
            f"/v1/workspaces/{seg(workspace)}/webhooks/{seg(webhook_id)}",
            json=fields,
            parse=Webhook.from_dict,
        )

    def delete(self, workspace: str, webhook_id: str) -> Any:
        return self._c._call(
            "DELETE", f"/v1/workspaces/{seg(workspace)}/webhooks/{seg(webhook_id)}", parse=lambda d: None
        )

    def deliveries(
        self, workspace: str, webhook_id: str, *, limit: Optional[int] = None, cursor: Optional[str] = None
    ) -> Any:
        return self._c._call(
            "GET",
            f"/v1/workspaces/{seg(workspace)}/webhooks/{seg(webhook_id)}/deliveries",
            params=_body(limit=limit, cursor=cursor),
            parse=lambda d: Page.parse(d, WebhookDelivery.from_dict),
        )

    def retry(self, workspace: str, webhook_id: str, delivery_id: str) -> Any:
        """Sends a delivery again now."""
        return self._c._call(
            "POST",
            f"/v1/workspaces/{seg(workspace)}/webhooks/{seg(webhook_id)}/deliveries/{seg(delivery_id)}/retry",
            parse=WebhookDelivery.from_dict,
        )

    def rotate_secret(self, workspace: str, webhook_id: str) -> Any:
        """A new signing secret (the answer's ``secret``); the old one still signs for a while."""
        return self._c._call(
            "POST",
            f"/v1/workspaces/{seg(workspace)}/webhooks/{seg(webhook_id)}/rotate-secret",
            parse=Webhook.from_dict,
        )


class Workspaces(_Resource):
    def create(self, slug: str, name: Optional[str] = None) -> Any:
        return self._c._call("POST", "/v1/workspaces", json=_body(slug=slug, name=name), parse=Workspace.from_dict)

    def list(self, *, limit: Optional[int] = None, cursor: Optional[str] = None) -> Any:
        return self._c._call(
            "GET", "/v1/workspaces", params=_body(limit=limit, cursor=cursor),
            parse=lambda d: Page.parse(d, Workspace.from_dict),
        )

    def get(self, workspace: str) -> Any:
        return self._c._call("GET", f"/v1/workspaces/{seg(workspace)}", parse=Workspace.from_dict)

    def delete(self, workspace: str) -> Any:
        return self._c._call("DELETE", f"/v1/workspaces/{seg(workspace)}", parse=lambda d: None)


class ApiKeys(_Resource):
    def create(self, name: str, *, workspace: Optional[str], scopes: List[str]) -> Any:
        """A new key; ``workspace=None`` makes an admin key. The answer's ``key`` is shown this once."""
        return self._c._call(
            "POST", "/v1/api-keys", json={"name": name, "workspace": workspace, "scopes": scopes},
            parse=ApiKey.from_dict,
        )

    def list(self, *, workspace: Optional[str] = None, limit: Optional[int] = None, cursor: Optional[str] = None) -> Any:
        return self._c._call(
            "GET", "/v1/api-keys", params=_body(workspace=workspace, limit=limit, cursor=cursor),
            parse=lambda d: Page.parse(d, ApiKey.from_dict),
        )

    def revoke(self, key_id: str) -> Any:
        return self._c._call("DELETE", f"/v1/api-keys/{seg(key_id)}", parse=lambda d: None)


class Apps(_Resource):
    def list(self, *, limit: Optional[int] = None, cursor: Optional[str] = None, **filters: Any) -> Any:
        return self._c._call(
            "GET", "/v1/apps", params=_body(limit=limit, cursor=cursor, **filters),
            parse=lambda d: Page.parse(d, App.from_dict),
        )

    def get(self, app: str) -> Any:
        return self._c._call("GET", f"/v1/apps/{seg(app)}", parse=App.from_dict)
