-- Web UI sessions kept by the server: the cookie carries only a random id, whose SHA-256 is the
-- key here, so that signing out (or revoking what a session was made with) ends it on every
-- instance at once. The subject is what signed in: an API key today, a person later.
CREATE TABLE ui_sessions (
    id_hash      TEXT COLLATE "C" NOT NULL,
    subject_kind TEXT   NOT NULL,
    subject_id   TEXT COLLATE "C" NOT NULL,
    csrf_token   TEXT   NOT NULL,
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL,
    CONSTRAINT ui_session_id PRIMARY KEY (id_hash)
);
CREATE INDEX ui_sessions_subject ON ui_sessions (subject_kind, subject_id);
CREATE INDEX ui_sessions_expiry ON ui_sessions (expires_at);

-- The audit trail of what no workspace owns: admin keys created and revoked, and every key
-- event seen from the instance's side.
CREATE TABLE instance_events (
    id           TEXT COLLATE "C" NOT NULL,
    at           BIGINT NOT NULL,
    actor        TEXT   NOT NULL,
    action       TEXT   NOT NULL,
    target_id    TEXT,
    target_name  TEXT,
    details      TEXT   NOT NULL,
    CONSTRAINT instance_event_id PRIMARY KEY (id)
);
