-- People and their roles. A person signs in by single sign-on (the provider's `sub` is kept)
-- or with a local password (only its argon2id hash is kept). Roles are per workspace; instance
-- administrators may do everything. API keys may belong to a person, whose current roles bound
-- what the key may do.

CREATE TABLE users (
    id             TEXT COLLATE "C" NOT NULL,
    display_name   TEXT   NOT NULL,
    email          TEXT COLLATE "C" NOT NULL,
    password_hash  TEXT,
    sso_subject    TEXT COLLATE "C",
    instance_admin BOOLEAN NOT NULL,
    created_at     BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL,
    CONSTRAINT user_id PRIMARY KEY (id),
    CONSTRAINT user_email UNIQUE (email),
    CONSTRAINT user_sso_subject UNIQUE (sso_subject)
);

CREATE TABLE memberships (
    workspace_id TEXT COLLATE "C" NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    user_id      TEXT COLLATE "C" NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role         TEXT   NOT NULL,
    created_at   BIGINT NOT NULL,
    CONSTRAINT membership PRIMARY KEY (workspace_id, user_id)
);
CREATE INDEX memberships_user ON memberships (user_id);

-- No foreign key: a removed person's keys stay listed (revoked) with the id they belonged to.
ALTER TABLE api_keys ADD COLUMN user_id TEXT COLLATE "C";
CREATE INDEX api_keys_user ON api_keys (user_id);
