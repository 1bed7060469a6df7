-- Concurrency pools whose level an application's 429 answers lowered (see the PostgreSQL
-- migration of the same number: the effective level is computed from these columns).

CREATE TABLE pool_levels (
    pool_id         TEXT    NOT NULL PRIMARY KEY,
    floor           INTEGER NOT NULL CHECK (floor >= 1),
    lowered_at      INTEGER NOT NULL,
    last_limited_at INTEGER NOT NULL,
    step_ms         INTEGER NOT NULL CHECK (step_ms >= 1)
);
