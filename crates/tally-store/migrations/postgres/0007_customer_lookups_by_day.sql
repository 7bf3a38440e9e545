-- Per-customer lookups (tier attribution's pieces, a usage query for one customer) go
-- through indexes led by the UTC day instead of by the customer.
--
-- `events (customer_id, time)` and `usage_daily_customer (customer_id, day)` put each
-- new event's entry anywhere in an index as large as the table: a random B-tree page per
-- event (measured without each: SQLite 38-40 k → 57 k and 52.7 k events/s, PostgreSQL
-- +5-9 %; docs/performance.md). Events arrive roughly in time order, so an index led by
-- the day (the same expression as the rollups' `day`) takes its inserts in the current
-- day's pages. A partial day of one customer is then
-- `time / 86400000000 = ? AND customer_id = ? AND time >= ? AND time < ?`, and a whole
-- day of one customer a seek of `usage_daily_customer`'s primary key
-- (kind, day, customer_id, ...) with the day as an equality (src/common/rollup.rs).
DROP INDEX events_customer_time;
CREATE INDEX events_day_customer ON events ((time / 86400000000), customer_id, time);
DROP INDEX usage_daily_customer_by_customer;
