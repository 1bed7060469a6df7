-- Instances waiting for a slot of a concurrency pool (see the PostgreSQL migration of the same
-- number). A single SQLite instance never reads another's mark, but the store keeps the same
-- table so that both backends answer the same way.

CREATE TABLE pool_wants (
    pool_id      TEXT    NOT NULL,
    holder       TEXT    NOT NULL,
    wanted_until INTEGER NOT NULL,
    PRIMARY KEY (pool_id, holder)
);
