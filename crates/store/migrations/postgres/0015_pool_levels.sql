-- Concurrency pools whose level an application's 429 answers lowered, shared by a cluster's
-- instances. The effective level is computed, never stored: the floor plus one for every
-- `step_ms` since the last 429, capped by the configured level. Times are milliseconds since
-- 1970. Like pool_slots, rows are keyed by pool (connection) id without a foreign key.

CREATE TABLE pool_levels (
    pool_id         TEXT COLLATE "C" PRIMARY KEY,
    floor           BIGINT NOT NULL CHECK (floor >= 1),
    lowered_at      BIGINT NOT NULL,
    last_limited_at BIGINT NOT NULL,
    step_ms         BIGINT NOT NULL CHECK (step_ms >= 1)
);
