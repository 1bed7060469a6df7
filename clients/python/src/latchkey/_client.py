"""``Latchkey`` (blocking) and ``AsyncLatchkey`` (asyncio), both over httpx."""

from __future__ import annotations

import asyncio
import os
import random
import threading
import time
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Dict, Mapping, Optional, Tuple

import httpx

from ._resources import ApiKeys, Apps, Connections, ConnectSessions, Webhooks, Workspaces, seg
from .errors import APIConnectionError, error_from_response
from .models import Token

__all__ = ["Latchkey", "AsyncLatchkey", "IDEMPOTENT_METHODS"]

DEFAULT_URL = "http://127.0.0.1:8080"
#: Methods that may be sent again after a network error: repeating them changes nothing more.
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
USER_AGENT = "latchkey-python/0.1.0"


def _settings(base_url: Optional[str], api_key: Optional[str]) -> Tuple[str, str]:
    url = base_url or os.environ.get("LATCHKEY_URL") or DEFAULT_URL
    key = api_key or os.environ.get("LATCHKEY_API_KEY")
    if not key:
        raise ValueError("no API key: pass api_key=… or set LATCHKEY_API_KEY")
    return url.rstrip("/"), key


def _backoff(attempt: int) -> float:
    """Seconds before retry number ``attempt`` (1, 2, …): exponential with jitter, at most 2 s."""
    return min(2.0, 0.1 * (2 ** (attempt - 1))) * (0.5 + random.random() / 2)


def _proxy_path(workspace: str, connection: str, path: str) -> str:
    return f"/v1/workspaces/{seg(workspace)}/connections/{seg(connection)}/proxy/{path.lstrip('/')}"


def _is_latchkey_refusal(resp: httpx.Response) -> bool:
    """A proxied call that Latchkey itself refused (it never reached the application): those
    answers lack ``Latchkey-Queue-Ms``, which every answer from the application carries."""
    return resp.status_code >= 400 and "latchkey-queue-ms" not in resp.headers


class _TokenCache:
    """Tokens by (workspace, connection), kept until ``expires_at`` minus the margin."""

    def __init__(self, margin: float) -> None:
        self.margin = timedelta(seconds=margin)
        self.entries: Dict[Tuple[str, str], Token] = {}

    def get(self, key: Tuple[str, str]) -> Optional[Token]:
        t = self.entries.get(key)
        if t is None or t.expires_at is None:
            return None
        if t.expires_at - self.margin <= datetime.now(timezone.utc):
            self.entries.pop(key, None)
            return None
        return t

    def put(self, key: Tuple[str, str], token: Token) -> None:
        if token.expires_at is not None:
            self.entries[key] = token
        else:
            self.entries.pop(key, None)


class _Base:
    def __init__(
        self,
        base_url: Optional[str],
        api_key: Optional[str],
        max_retries: int,
        token_margin: float,
    ) -> None:
        self.base_url, self._api_key = _settings(base_url, api_key)
        if max_retries < 0:
            raise ValueError("max_retries must be 0 or more")
        self.max_retries = max_retries
        self._tokens = _TokenCache(token_margin)
        self.connections = Connections(self)
        self.connect_sessions = ConnectSessions(self)
        self.webhooks = Webhooks(self)
        self.workspaces = Workspaces(self)
        self.api_keys = ApiKeys(self)
        self.apps = Apps(self)

    def _headers(self) -> Dict[str, str]:
        return {"authorization": f"Bearer {self._api_key}", "user-agent": USER_AGENT}

    def _retries_for(self, method: str) -> int:
        return self.max_retries if method.upper() in IDEMPOTENT_METHODS else 0

    @staticmethod
    def _finish(resp: httpx.Response, parse: Callable[[Any], Any]) -> Any:
        if resp.status_code >= 400:
            raise error_from_response(resp)
        if resp.status_code == 204 or not resp.content:
            return parse({})
        return parse(resp.json())

    def __repr__(self) -> str:
        return f"{type(self).__name__}(base_url={self.base_url!r})"


class Latchkey(_Base):
    """A blocking client.

    ``base_url`` and ``api_key`` default to ``LATCHKEY_URL`` (else ``http://127.0.0.1:8080``) and
    ``LATCHKEY_API_KEY``. Network errors are retried up to ``max_retries`` times for idempotent
    requests only (GET, HEAD, OPTIONS, PUT, DELETE); a POST or PATCH is never sent twice.
    ``token()`` answers from a cache until ``token_margin`` seconds before the token's ``expires_at``.
    """

    def __init__(
        self,
        base_url: Optional[str] = None,
        api_key: Optional[str] = None,
        *,
        timeout: float = 60.0,
        max_retries: int = 2,
        token_margin: float = 60.0,
        transport: Optional[httpx.BaseTransport] = None,
        http_client: Optional[httpx.Client] = None,
    ) -> None:
        super().__init__(base_url, api_key, max_retries, token_margin)
        self._http = http_client or httpx.Client(timeout=timeout, transport=transport, follow_redirects=False)
        self._lock = threading.Lock()

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> "Latchkey":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _send(self, method: str, path: str, **kw: Any) -> httpx.Response:
        headers = {**(kw.pop("headers", None) or {}), **self._headers()}
        retries = self._retries_for(method)
        attempt = 0
        while True:
            try:
                return self._http.request(method, self.base_url + path, headers=headers, **kw)
            except httpx.TransportError as e:
                attempt += 1
                if attempt > retries:
                    raise APIConnectionError(f"{method} {path}: {e}", e) from e
                time.sleep(_backoff(attempt))

    def _call(
        self,
        method: str,
        path: str,
        *,
        params: Optional[Mapping[str, Any]] = None,
        json: Any = None,
        parse: Callable[[Any], Any] = lambda d: d,
    ) -> Any:
        kw: Dict[str, Any] = {"params": params or None}
        if json is not None:
            kw["json"] = json
        return self._finish(self._send(method, path, **kw), parse)

    def token(self, workspace: str, connection: str, *, force_refresh: bool = False) -> Token:
        """A fresh access token of an OAuth connection (``access_token``, ``expires_at``,
        ``instance_url``), from the cache while it is good. ``force_refresh=True`` asks Latchkey
        to refresh (after the application answered 401 to this token)."""
        key = (workspace, connection)
        with self._lock:
            if not force_refresh:
                cached = self._tokens.get(key)
                if cached is not None:
                    return cached
            base = f"/v1/workspaces/{seg(workspace)}/connections/{seg(connection)}/token"
            if force_refresh:
                tok = self._call("POST", base + "/refresh", parse=Token.from_dict)
            else:
                tok = self._call("GET", base, parse=Token.from_dict)
            self._tokens.put(key, tok)
            return tok

    def proxy(
        self,
        workspace: str,
        connection: str,
        method: str,
        path: str,
        *,
        params: Any = None,
        headers: Optional[Mapping[str, str]] = None,
        content: Any = None,
        json: Any = None,
        timeout: Any = httpx.USE_CLIENT_DEFAULT,
    ) -> httpx.Response:
        """Calls the application through the connection; Latchkey adds the credential. Answers
        the application's ``httpx.Response`` whatever its status (an expired session is refreshed
        and retried by Latchkey). Raises a typed error when Latchkey itself refuses the call
        (unknown connection, missing ``proxy`` scope, pool busy, application unreachable)."""
        kw: Dict[str, Any] = {"params": params, "headers": dict(headers or {}), "timeout": timeout}
        if content is not None:
            kw["content"] = content
        if json is not None:
            kw["json"] = json
        resp = self._send(method.upper(), _proxy_path(workspace, connection, path), **kw)
        if _is_latchkey_refusal(resp):
            raise error_from_response(resp)
        return resp


class AsyncLatchkey(_Base):
    """The asyncio client: the same surface as :class:`Latchkey`, every call awaited."""

    def __init__(
        self,
        base_url: Optional[str] = None,
        api_key: Optional[str] = None,
        *,
        timeout: float = 60.0,
        max_retries: int = 2,
        token_margin: float = 60.0,
        transport: Optional[httpx.AsyncBaseTransport] = None,
        http_client: Optional[httpx.AsyncClient] = None,
    ) -> None:
        super().__init__(base_url, api_key, max_retries, token_margin)
        self._http = http_client or httpx.AsyncClient(timeout=timeout, transport=transport, follow_redirects=False)
        self._lock: Optional[asyncio.Lock] = None

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> "AsyncLatchkey":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.aclose()

    async def _send(self, method: str, path: str, **kw: Any) -> httpx.Response:
        headers = {**(kw.pop("headers", None) or {}), **self._headers()}
        retries = self._retries_for(method)
        attempt = 0
        while True:
            try:
                return await self._http.request(method, self.base_url + path, headers=headers, **kw)
            except httpx.TransportError as e:
                attempt += 1
                if attempt > retries:
                    raise APIConnectionError(f"{method} {path}: {e}", e) from e
                await asyncio.sleep(_backoff(attempt))

    async def _call(
        self,
        method: str,
        path: str,
        *,
        params: Optional[Mapping[str, Any]] = None,
        json: Any = None,
        parse: Callable[[Any], Any] = lambda d: d,
    ) -> Any:
        kw: Dict[str, Any] = {"params": params or None}
        if json is not None:
            kw["json"] = json
        return self._finish(await self._send(method, path, **kw), parse)

    async def token(self, workspace: str, connection: str, *, force_refresh: bool = False) -> Token:
        """See :meth:`Latchkey.token`."""
        if self._lock is None:
            self._lock = asyncio.Lock()
        key = (workspace, connection)
        async with self._lock:
            if not force_refresh:
                cached = self._tokens.get(key)
                if cached is not None:
                    return cached
            base = f"/v1/workspaces/{seg(workspace)}/connections/{seg(connection)}/token"
            if force_refresh:
                tok = await self._call("POST", base + "/refresh", parse=Token.from_dict)
            else:
                tok = await self._call("GET", base, parse=Token.from_dict)
            self._tokens.put(key, tok)
            return tok

    async def proxy(
        self,
        workspace: str,
        connection: str,
        method: str,
        path: str,
        *,
        params: Any = None,
        headers: Optional[Mapping[str, str]] = None,
        content: Any = None,
        json: Any = None,
        timeout: Any = httpx.USE_CLIENT_DEFAULT,
    ) -> httpx.Response:
        """See :meth:`Latchkey.proxy`."""
        kw: Dict[str, Any] = {"params": params, "headers": dict(headers or {}), "timeout": timeout}
        if content is not None:
            kw["content"] = content
        if json is not None:
            kw["json"] = json
        resp = await self._send(method.upper(), _proxy_path(workspace, connection, path), **kw)
        if _is_latchkey_refusal(resp):
            raise error_from_response(resp)
        return resp
