-- OAuth: tokens beside the credentials, per-workspace OAuth clients, pending authorizations.

ALTER TABLE connections ADD COLUMN token_key_id TEXT COLLATE "C";
ALTER TABLE connections ADD COLUMN token_ciphertext BYTEA;
ALTER TABLE connections ADD COLUMN token_meta TEXT;

CREATE TABLE oauth_clients (
    workspace_id      TEXT COLLATE "C" NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    app               TEXT   NOT NULL,
    client_id         TEXT   NOT NULL,
    secret_key_id     TEXT COLLATE "C",
    secret_ciphertext BYTEA,
    created_at        BIGINT NOT NULL,
    updated_at        BIGINT NOT NULL,
    CONSTRAINT oauth_client PRIMARY KEY (workspace_id, app)
);

CREATE TABLE oauth_states (
    state_hash          TEXT COLLATE "C" NOT NULL,
    workspace_id        TEXT COLLATE "C" NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    connection_id       TEXT COLLATE "C" NOT NULL REFERENCES connections (id) ON DELETE CASCADE,
    verifier_key_id     TEXT COLLATE "C",
    verifier_ciphertext BYTEA,
    redirect_uri        TEXT   NOT NULL,
    created_at          BIGINT NOT NULL,
    expires_at          BIGINT NOT NULL,
    CONSTRAINT oauth_state PRIMARY KEY (state_hash)
);
-- Foreign-key cascades look rows up by the referencing column.
CREATE INDEX oauth_states_workspace ON oauth_states (workspace_id);
CREATE INDEX oauth_states_connection ON oauth_states (connection_id);
