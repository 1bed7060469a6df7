-- Connection health (probe and proactive-refresh schedule, last outcome), webhooks and their
-- outbox. Timestamps are unix milliseconds.

-- One row per connection. `due_at` is the earlier of `probe_at` and `refresh_at` (or now, for a
-- row whose probe is not placed yet, `probe_at` null): the background worker claims due rows
-- under a lease, so each connection is worked on by one instance at a time.
CREATE TABLE connection_health (
    connection_id        TEXT    NOT NULL PRIMARY KEY REFERENCES connections (id) ON DELETE CASCADE,
    workspace_id         TEXT    NOT NULL,
    due_at               INTEGER NOT NULL,
    probe_at             INTEGER,
    refresh_at           INTEGER,
    last_checked_at      INTEGER,
    last_ok_at           INTEGER,
    consecutive_failures INTEGER NOT NULL DEFAULT 0,
    last_error           TEXT,
    lease_owner          TEXT,
    lease_until          INTEGER
);
CREATE INDEX connection_health_due ON connection_health (due_at);

INSERT INTO connection_health (connection_id, workspace_id, due_at)
    SELECT id, workspace_id, 0 FROM connections;

CREATE TABLE webhooks (
    id                TEXT    NOT NULL PRIMARY KEY,
    workspace_id      TEXT    NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    url               TEXT    NOT NULL,
    events            TEXT    NOT NULL,
    description       TEXT,
    enabled           INTEGER NOT NULL,
    secret_key_id     TEXT    NOT NULL,
    secret_ciphertext BLOB    NOT NULL,
    previous_until    INTEGER,
    failing_since     INTEGER,
    disabled_reason   TEXT,
    created_at        INTEGER NOT NULL,
    updated_at        INTEGER NOT NULL
);
CREATE INDEX webhooks_workspace ON webhooks (workspace_id, id);

-- The outbox: one row per (event, webhook), written in the event's transaction.
CREATE TABLE webhook_deliveries (
    id               TEXT    NOT NULL PRIMARY KEY,
    webhook_id       TEXT    NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    workspace_id     TEXT    NOT NULL,
    event_id         TEXT    NOT NULL,
    event_type       TEXT    NOT NULL,
    payload          TEXT    NOT NULL,
    status           TEXT    NOT NULL,
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  INTEGER,
    last_attempt_at  INTEGER,
    last_status_code INTEGER,
    last_error       TEXT,
    created_at       INTEGER NOT NULL,
    lease_owner      TEXT,
    lease_until      INTEGER
);
CREATE INDEX webhook_deliveries_webhook ON webhook_deliveries (webhook_id, id);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at);
