-- OAuth: tokens beside the credentials, per-workspace OAuth clients, pending authorizations.

ALTER TABLE connections ADD COLUMN token_key_id TEXT;
ALTER TABLE connections ADD COLUMN token_ciphertext BLOB;
ALTER TABLE connections ADD COLUMN token_meta TEXT;

CREATE TABLE oauth_clients (
    workspace_id      TEXT    NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    app               TEXT    NOT NULL,
    client_id         TEXT    NOT NULL,
    secret_key_id     TEXT,
    secret_ciphertext BLOB,
    created_at        INTEGER NOT NULL,
    updated_at        INTEGER NOT NULL,
    PRIMARY KEY (workspace_id, app)
);

CREATE TABLE oauth_states (
    state_hash          TEXT    NOT NULL PRIMARY KEY,
    workspace_id        TEXT    NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    connection_id       TEXT    NOT NULL REFERENCES connections (id) ON DELETE CASCADE,
    verifier_key_id     TEXT,
    verifier_ciphertext BLOB,
    redirect_uri        TEXT    NOT NULL,
    created_at          INTEGER NOT NULL,
    expires_at          INTEGER NOT NULL
);
-- Foreign-key cascades look rows up by the referencing column.
CREATE INDEX oauth_states_workspace ON oauth_states (workspace_id);
CREATE INDEX oauth_states_connection ON oauth_states (connection_id);
