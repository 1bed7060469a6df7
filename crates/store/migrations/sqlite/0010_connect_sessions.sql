-- Connect sessions: end users connect their own accounts through a short-lived token (only its
-- SHA-256 is stored). Connections remember the end user and organization they were made for;
-- workspaces carry the branding of the hosted connect page.

ALTER TABLE workspaces ADD COLUMN branding TEXT;

ALTER TABLE connections ADD COLUMN end_user_id TEXT;
ALTER TABLE connections ADD COLUMN owner TEXT;
CREATE INDEX connections_end_user ON connections (workspace_id, end_user_id, id);

CREATE TABLE connect_sessions (
    id                   TEXT    NOT NULL PRIMARY KEY,
    workspace_id         TEXT    NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    token_hash           TEXT    NOT NULL,
    owner                TEXT    NOT NULL,
    allowed_apps         TEXT    NOT NULL,
    environment          TEXT    NOT NULL,
    connection_id        TEXT,
    result_connection_id TEXT,
    allowed_origins      TEXT    NOT NULL,
    created_by           TEXT    NOT NULL,
    created_at           INTEGER NOT NULL,
    expires_at           INTEGER NOT NULL,
    completed_at         INTEGER,
    cancelled_at         INTEGER,
    CONSTRAINT connect_session_token UNIQUE (token_hash)
);
CREATE INDEX connect_sessions_workspace ON connect_sessions (workspace_id, id);
CREATE INDEX connect_sessions_result ON connect_sessions (result_connection_id);
