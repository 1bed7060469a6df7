-- People and their roles. A person signs in by single sign-on (the provider's `sub` is kept)
-- or with a local password (only its argon2id hash is kept). Roles are per workspace; instance
-- administrators may do everything. API keys may belong to a person, whose current roles bound
-- what the key may do.

CREATE TABLE users (
    id             TEXT    NOT NULL PRIMARY KEY,
    display_name   TEXT    NOT NULL,
    email          TEXT    NOT NULL,
    password_hash  TEXT,
    sso_subject    TEXT,
    instance_admin BOOLEAN NOT NULL,
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL,
    CONSTRAINT user_email UNIQUE (email),
    CONSTRAINT user_sso_subject UNIQUE (sso_subject)
);

CREATE TABLE memberships (
    workspace_id TEXT    NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    user_id      TEXT    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role         TEXT    NOT NULL,
    created_at   INTEGER NOT NULL,
    PRIMARY KEY (workspace_id, user_id)
);
CREATE INDEX memberships_user ON memberships (user_id);

-- No foreign key: a removed person's keys stay listed (revoked) with the id they belonged to.
ALTER TABLE api_keys ADD COLUMN user_id TEXT;
CREATE INDEX api_keys_user ON api_keys (user_id);
