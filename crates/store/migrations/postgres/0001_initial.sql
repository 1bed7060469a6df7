-- Timestamps are unix milliseconds; JSON is stored as text so both backends share queries.
-- Ids sort with COLLATE "C": cursors compare them bytewise, whatever the database's locale.
-- Constraints carry the names the store reports in `Duplicate { constraint }`.

CREATE TABLE workspaces (
    id          TEXT COLLATE "C" NOT NULL,
    slug        TEXT   NOT NULL,
    name        TEXT   NOT NULL,
    data_key_id TEXT COLLATE "C" NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    CONSTRAINT workspace_id PRIMARY KEY (id),
    CONSTRAINT workspace_slug UNIQUE (slug)
);

CREATE TABLE data_keys (
    id            TEXT COLLATE "C" NOT NULL,
    workspace_id  TEXT COLLATE "C" REFERENCES workspaces (id) ON DELETE CASCADE,
    master_key_id TEXT   NOT NULL,
    wrapped       BYTEA  NOT NULL,
    created_at    BIGINT NOT NULL,
    CONSTRAINT data_key_id PRIMARY KEY (id)
);
CREATE INDEX data_keys_workspace ON data_keys (workspace_id);

CREATE TABLE connections (
    id                  TEXT COLLATE "C" NOT NULL,
    workspace_id        TEXT COLLATE "C" NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    name                TEXT   NOT NULL,
    app                 TEXT   NOT NULL,
    environment         TEXT   NOT NULL,
    auth_mode           TEXT   NOT NULL,
    status              TEXT   NOT NULL,
    status_reason       TEXT,
    hint                TEXT,
    settings            TEXT   NOT NULL,
    borrow_from         TEXT COLLATE "C",
    cred_key_id         TEXT COLLATE "C",
    cred_ciphertext     BYTEA,
    version             BIGINT NOT NULL,
    created_at          BIGINT NOT NULL,
    updated_at          BIGINT NOT NULL,
    verified_at         BIGINT,
    refresh_lease_owner TEXT,
    refresh_lease_until BIGINT,
    CONSTRAINT connection_id PRIMARY KEY (id),
    CONSTRAINT connection_name UNIQUE (workspace_id, name)
);
CREATE INDEX connections_app ON connections (workspace_id, app);
CREATE INDEX connections_borrow_from ON connections (borrow_from);

CREATE TABLE flows (
    id           TEXT COLLATE "C" NOT NULL,
    workspace_id TEXT COLLATE "C" NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    name         TEXT    NOT NULL,
    environment  TEXT    NOT NULL,
    active       BOOLEAN NOT NULL,
    created_at   BIGINT  NOT NULL,
    updated_at   BIGINT  NOT NULL,
    CONSTRAINT flow_id PRIMARY KEY (id),
    CONSTRAINT flow_name UNIQUE (workspace_id, name)
);

CREATE TABLE flow_connections (
    flow_id       TEXT COLLATE "C" NOT NULL REFERENCES flows (id) ON DELETE CASCADE,
    connection_id TEXT COLLATE "C" NOT NULL REFERENCES connections (id) ON DELETE CASCADE,
    position      BIGINT NOT NULL,
    CONSTRAINT flow_connection PRIMARY KEY (flow_id, connection_id)
);
CREATE INDEX flow_connections_connection ON flow_connections (connection_id);

CREATE TABLE api_keys (
    id           TEXT COLLATE "C" NOT NULL,
    name         TEXT   NOT NULL,
    workspace_id TEXT COLLATE "C" REFERENCES workspaces (id) ON DELETE CASCADE,
    scopes       TEXT   NOT NULL,
    hash         TEXT   NOT NULL,
    prefix       TEXT   NOT NULL,
    created_at   BIGINT NOT NULL,
    revoked_at   BIGINT,
    CONSTRAINT api_key_id PRIMARY KEY (id),
    CONSTRAINT api_key_hash UNIQUE (hash)
);
CREATE INDEX api_keys_workspace ON api_keys (workspace_id, id);

CREATE TABLE events (
    id           TEXT COLLATE "C" NOT NULL,
    workspace_id TEXT COLLATE "C" NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    at           BIGINT NOT NULL,
    actor        TEXT   NOT NULL,
    action       TEXT   NOT NULL,
    target_id    TEXT,
    target_name  TEXT,
    details      TEXT   NOT NULL,
    CONSTRAINT event_id PRIMARY KEY (id)
);
CREATE INDEX events_workspace ON events (workspace_id, id);
