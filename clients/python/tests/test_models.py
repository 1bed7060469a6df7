"""The models and the paths the client calls, checked against the server's /openapi.json (and the
committed clients/openapi.json, which a Rust test keeps equal to it)."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pytest

from latchkey import ApiKey, App, Connection, ConnectSession, Token, Webhook, WebhookDelivery, Workspace
from latchkey.models import Authorization

from conftest import needs_path

COMMITTED = Path(__file__).resolve().parents[2] / "openapi.json"

# Each model, and the operation whose answer it is.
MODELS = [
    (Connection, "/v1/workspaces/{ws}/connections/{conn}", "get", "200"),
    (Token, "/v1/workspaces/{ws}/connections/{conn}/token", "get", "200"),
    (App, "/v1/apps/{app}", "get", "200"),
    (Workspace, "/v1/workspaces/{ws}", "get", "200"),
    (ApiKey, "/v1/api-keys", "post", "201"),
    (ConnectSession, "/v1/workspaces/{ws}/connect-sessions", "post", "201"),
    (ConnectSession, "/v1/workspaces/{ws}/connect-sessions/{id}", "get", "200"),
    (Webhook, "/v1/workspaces/{ws}/webhooks/{id}", "get", "200"),
    (Webhook, "/v1/workspaces/{ws}/webhooks", "post", "201"),
    (WebhookDelivery, "/v1/workspaces/{ws}/webhooks/{id}/deliveries", "get", "200"),
]

# Every operation the client sends (method, OpenAPI path).
CALLS = [
    ("get", "/v1/apps"), ("get", "/v1/apps/{app}"),
    ("post", "/v1/workspaces"), ("get", "/v1/workspaces"), ("get", "/v1/workspaces/{ws}"),
    ("delete", "/v1/workspaces/{ws}"),
    ("post", "/v1/api-keys"), ("get", "/v1/api-keys"), ("delete", "/v1/api-keys/{id}"),
    ("post", "/v1/workspaces/{ws}/connections"), ("get", "/v1/workspaces/{ws}/connections"),
    ("get", "/v1/workspaces/{ws}/connections/{conn}"), ("patch", "/v1/workspaces/{ws}/connections/{conn}"),
    ("delete", "/v1/workspaces/{ws}/connections/{conn}"), ("post", "/v1/workspaces/{ws}/connections/{conn}/verify"),
    ("get", "/v1/workspaces/{ws}/connections/{conn}/token"),
    ("post", "/v1/workspaces/{ws}/connections/{conn}/token/refresh"),
    ("get", "/v1/workspaces/{ws}/connections/{conn}/proxy/{path}"),
]
LATER_CALLS = [
    ("post", "/v1/workspaces/{ws}/connect-sessions"), ("get", "/v1/workspaces/{ws}/connect-sessions"),
    ("get", "/v1/workspaces/{ws}/connect-sessions/{id}"),
    ("delete", "/v1/workspaces/{ws}/connect-sessions/{id}"),
    ("post", "/v1/workspaces/{ws}/webhooks"), ("get", "/v1/workspaces/{ws}/webhooks"),
    ("get", "/v1/workspaces/{ws}/webhooks/{id}"), ("patch", "/v1/workspaces/{ws}/webhooks/{id}"),
    ("delete", "/v1/workspaces/{ws}/webhooks/{id}"), ("get", "/v1/workspaces/{ws}/webhooks/{id}/deliveries"),
    ("post", "/v1/workspaces/{ws}/webhooks/{id}/deliveries/{delivery}/retry"),
    ("post", "/v1/workspaces/{ws}/webhooks/{id}/rotate-secret"),
]


def _shape(path: str) -> str:
    """A path with its parameter names blanked: `{ws}` and `{workspace}` are the same path."""
    return re.sub(r"\{[^}]+\}", "{}", path)


def _find(openapi, path):
    by_shape = {_shape(p): p for p in openapi["paths"]}
    return by_shape.get(_shape(path))


def _resolve(openapi, schema):
    while "$ref" in schema:
        schema = openapi["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
    return schema


def _properties(openapi, schema):
    """Properties and required names of a schema, following `$ref` and `allOf`."""
    schema = _resolve(openapi, schema)
    props, required = dict(schema.get("properties", {})), set(schema.get("required", []))
    for part in schema.get("allOf", []):
        p, r = _properties(openapi, part)
        props.update(p)
        required |= r
    return props, required


def _fields(model):
    return {f.name for f in dataclasses.fields(model)} - {"extra"}


def test_the_committed_document_is_the_served_one(openapi):
    assert json.loads(COMMITTED.read_text()) == openapi, (
        "clients/openapi.json is stale: LATCHKEY_UPDATE_OPENAPI=1 cargo test -p latchkey-server --test openapi")


@pytest.mark.parametrize("model,path,method,status", MODELS, ids=[f"{m[0].__name__}-{m[2]}" for m in MODELS])
def test_models_follow_the_document(openapi, model, path, method, status):
    real = _find(openapi, path)
    if real is None:
        needs_path(openapi, path)
    op = openapi["paths"][real][method]
    schema = op["responses"][status]["content"]["application/json"]["schema"]
    if "items" in _resolve(openapi, schema).get("properties", {}):  # a list: its items
        schema = _resolve(openapi, schema)["properties"]["items"]["items"]
    props, required = _properties(openapi, schema)
    fields = _fields(model)
    # A model may stand for several answers (a connect session as created, and as read later):
    # its fields must each come from one of them, and it must have what each one requires.
    for other, opath, omethod, ostatus in MODELS:
        real_other = _find(openapi, opath)
        if other is model and real_other is not None and (opath, omethod) != (path, method):
            oschema = openapi["paths"][real_other][omethod]["responses"][ostatus]["content"]["application/json"]["schema"]
            if "items" in _resolve(openapi, oschema).get("properties", {}):
                oschema = _resolve(openapi, oschema)["properties"]["items"]["items"]
            props = {**props, **_properties(openapi, oschema)[0]}
    unknown = fields - set(props)
    assert not unknown, f"{model.__name__} has fields the server does not answer: {sorted(unknown)}"
    missing = required - fields
    assert not missing, f"{model.__name__} lacks required fields of the answer: {sorted(missing)}"
    if model is Connection:
        auth = props["authorization"]
        for alt in auth.get("oneOf", []) + auth.get("anyOf", []):
            if "$ref" in alt:
                auth = alt
        auth_props, _ = _properties(openapi, auth)
        assert _fields(Authorization) <= set(auth_props)


def test_every_call_the_client_makes_is_in_the_document(openapi):
    for method, path in CALLS:
        real = _find(openapi, path)
        assert real is not None and method in openapi["paths"][real], f"{method.upper()} {path} is not served"


def test_the_calls_of_endpoints_built_elsewhere(openapi):
    missing = [f"{m.upper()} {p}" for m, p in LATER_CALLS if _find(openapi, p) is None]
    if len(missing) == len(LATER_CALLS):
        needs_path(openapi, "/v1/workspaces/{ws}/webhooks")
    for method, path in LATER_CALLS:
        real = _find(openapi, path)
        if real is None:
            needs_path(openapi, path)
        assert method in openapi["paths"][real], f"{method.upper()} {path} is not served"
