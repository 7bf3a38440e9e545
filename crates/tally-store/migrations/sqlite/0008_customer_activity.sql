-- Which customers were active on which day, as one bitmap per (kind, day, service): the
-- distinct-customer figures (active users per service, active customers, adoption) become
-- the union of a span's bitmaps and a count of its bits, whatever the number of
-- customers, instead of one row per active customer (`usage_activity`, migration 0005,
-- which this replaces: ~0.4-0.8 s per endpoint at 100 k customers).
--
-- A bitmap needs small integers: `customer_numbers` gives every customer id seen in an
-- event one, for good. Numbers are only ever added, so a process may keep them in memory.
CREATE TABLE customer_numbers (
    n           INTEGER PRIMARY KEY,
    customer_id TEXT NOT NULL UNIQUE
);

-- `bits` is a serialized roaring bitmap (the portable format, roaring-rs) of the numbers
-- in [chunk * 65536, chunk * 65536 + 65536) of the customers with an event of `kind` for
-- `service` ('' for none) on `day` (days since 1970-01-01, UTC, as the rollups'). Split
-- into chunks of 65,536 customers so that a write rewrites at most 8 KiB per key.
-- Ingestion adds each group's customers in its transaction (src/ingest/activity.rs).
CREATE TABLE customer_activity (
    kind    TEXT NOT NULL,
    day     INTEGER NOT NULL,
    service TEXT NOT NULL,
    chunk   INTEGER NOT NULL,
    bits    BLOB NOT NULL,
    PRIMARY KEY (kind, day, service, chunk)
) WITHOUT ROWID;

-- Filled from `usage_daily_customer` by the store after migrating, in Rust (SQL cannot
-- build the bitmaps); this row says that is still to do.
CREATE TABLE customer_activity_backfill (pending INTEGER NOT NULL);
INSERT INTO customer_activity_backfill (pending) VALUES (1);

DROP TRIGGER usage_activity_mark;
DROP TABLE usage_activity;
