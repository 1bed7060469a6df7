-- Timestamps are unix milliseconds; JSON is stored as text; booleans as 0/1.

CREATE TABLE workspaces (
    id          TEXT    NOT NULL PRIMARY KEY,
    slug        TEXT    NOT NULL,
    name        TEXT    NOT NULL,
    data_key_id TEXT    NOT NULL,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    CONSTRAINT workspace_slug UNIQUE (slug)
);

CREATE TABLE data_keys (
    id            TEXT    NOT NULL PRIMARY KEY,
    workspace_id  TEXT    REFERENCES workspaces (id) ON DELETE CASCADE,
    master_key_id TEXT    NOT NULL,
    wrapped       BLOB    NOT NULL,
    created_at    INTEGER NOT NULL
);
CREATE INDEX data_keys_workspace ON data_keys (workspace_id);

CREATE TABLE connections (
    id                  TEXT    NOT NULL PRIMARY KEY,
    workspace_id        TEXT    NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    name                TEXT    NOT NULL,
    app                 TEXT    NOT NULL,
    environment         TEXT    NOT NULL,
    auth_mode           TEXT    NOT NULL,
    status              TEXT    NOT NULL,
    status_reason       TEXT,
    hint                TEXT,
    settings            TEXT    NOT NULL,
    borrow_from         TEXT,
    cred_key_id         TEXT,
    cred_ciphertext     BLOB,
    version             INTEGER NOT NULL,
    created_at          INTEGER NOT NULL,
    updated_at          INTEGER NOT NULL,
    verified_at         INTEGER,
    refresh_lease_owner TEXT,
    refresh_lease_until INTEGER,
    CONSTRAINT connection_name UNIQUE (workspace_id, name)
);
CREATE INDEX connections_app ON connections (workspace_id, app);
CREATE INDEX connections_borrow_from ON connections (borrow_from);

CREATE TABLE flows (
    id           TEXT    NOT NULL PRIMARY KEY,
    workspace_id TEXT    NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    name         TEXT    NOT NULL,
    environment  TEXT    NOT NULL,
    active       INTEGER NOT NULL,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL,
    CONSTRAINT flow_name UNIQUE (workspace_id, name)
);

CREATE TABLE flow_connections (
    flow_id       TEXT    NOT NULL REFERENCES flows (id) ON DELETE CASCADE,
    connection_id TEXT    NOT NULL REFERENCES connections (id) ON DELETE CASCADE,
    position      INTEGER NOT NULL,
    PRIMARY KEY (flow_id, connection_id)
);
CREATE INDEX flow_connections_connection ON flow_connections (connection_id);

CREATE TABLE api_keys (
    id           TEXT    NOT NULL PRIMARY KEY,
    name         TEXT    NOT NULL,
    workspace_id TEXT    REFERENCES workspaces (id) ON DELETE CASCADE,
    scopes       TEXT    NOT NULL,
    hash         TEXT    NOT NULL,
    prefix       TEXT    NOT NULL,
    created_at   INTEGER NOT NULL,
    revoked_at   INTEGER,
    CONSTRAINT api_key_hash UNIQUE (hash)
);
CREATE INDEX api_keys_workspace ON api_keys (workspace_id, id);

CREATE TABLE events (
    id           TEXT    NOT NULL PRIMARY KEY,
    workspace_id TEXT    NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    at           INTEGER NOT NULL,
    actor        TEXT    NOT NULL,
    action       TEXT    NOT NULL,
    target_id    TEXT,
    target_name  TEXT,
    details      TEXT    NOT NULL
);
CREATE INDEX events_workspace ON events (workspace_id, id);
