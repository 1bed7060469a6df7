-- Instances waiting for a slot of a concurrency pool: one row per pool and instance (the slot
-- holder name), whose mark lasts until `wanted_until` (milliseconds since 1970) unless the
-- instance renews it by missing again. An instance that holds a slot reads the others' live
-- marks before it keeps the slot past its reuse window; a crashed instance's mark simply stops
-- counting when it runs out, and the heartbeat deletes rows that ran out. Keyed by pool
-- (connection) id without a foreign key, like pool_slots.

CREATE TABLE pool_wants (
    pool_id      TEXT COLLATE "C" NOT NULL,
    holder       TEXT COLLATE "C" NOT NULL,
    wanted_until BIGINT NOT NULL,
    CONSTRAINT pool_want PRIMARY KEY (pool_id, holder)
);
