-- Concurrency-pool slots shared by a cluster. Pool ids are connection ids, without a foreign
-- key: a pool's slots may outlive its connection until their holders release them.

CREATE TABLE pool_slots (
    pool_id     TEXT    NOT NULL,
    slot        INTEGER NOT NULL,
    holder      TEXT,
    lease_until INTEGER,
    PRIMARY KEY (pool_id, slot)
);
-- The heartbeat renews every slot of one holder.
CREATE INDEX pool_slots_holder ON pool_slots (holder);
