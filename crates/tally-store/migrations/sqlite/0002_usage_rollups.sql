-- Daily rollups of the events, so that the analytics answer whole UTC days without
-- scanning events: `usage()` reads whole days of a span from here and only the partial
-- days at its edges from `events`, and adds them up (an exact answer, not an estimate).
--
-- Ingestion keeps both tables up to date in the same transaction as the insert, adding
-- only the events it actually stored (duplicates change nothing).
--
-- Key columns are NOT NULL so that the upsert's conflict target matches: '' stands for a
-- missing service, model, provider or customer (validation never lets '' through), and
-- -1 for a cache_hit that was not reported. `day` is days since 1970-01-01 (UTC).

-- Every dimension but the customer: a few thousand rows for months of traffic.
CREATE TABLE usage_daily (
    kind               TEXT NOT NULL,
    day                INTEGER NOT NULL,
    service            TEXT NOT NULL,
    model              TEXT NOT NULL,
    provider           TEXT NOT NULL,
    cache_hit          INTEGER NOT NULL,
    events             INTEGER NOT NULL,
    quantity           INTEGER NOT NULL,
    input_tokens       INTEGER NOT NULL,
    output_tokens      INTEGER NOT NULL,
    cache_read_tokens  INTEGER NOT NULL,
    cache_write_tokens INTEGER NOT NULL,
    cost               INTEGER NOT NULL,
    unpriced           INTEGER NOT NULL,
    latency_sum        REAL NOT NULL,
    latency_count      INTEGER NOT NULL,
    status_count       INTEGER NOT NULL,
    error_count        INTEGER NOT NULL,
    up_count           INTEGER NOT NULL,
    PRIMARY KEY (kind, day, service, model, provider, cache_hit)
) WITHOUT ROWID;

-- Per customer and service (`llm` = 1 for events with a model): the distinct-customer
-- figures and the attribution of events to tiers.
CREATE TABLE usage_daily_customer (
    kind               TEXT NOT NULL,
    day                INTEGER NOT NULL,
    customer_id        TEXT NOT NULL,
    service            TEXT NOT NULL,
    llm                INTEGER NOT NULL,
    events             INTEGER NOT NULL,
    quantity           INTEGER NOT NULL,
    input_tokens       INTEGER NOT NULL,
    output_tokens      INTEGER NOT NULL,
    cache_read_tokens  INTEGER NOT NULL,
    cache_write_tokens INTEGER NOT NULL,
    cost               INTEGER NOT NULL,
    unpriced           INTEGER NOT NULL,
    latency_sum        REAL NOT NULL,
    latency_count      INTEGER NOT NULL,
    status_count       INTEGER NOT NULL,
    error_count        INTEGER NOT NULL,
    up_count           INTEGER NOT NULL,
    PRIMARY KEY (kind, day, customer_id, service, llm)
) WITHOUT ROWID;
-- One customer's days (tier attribution cuts a customer's span at subscription changes).
CREATE INDEX usage_daily_customer_by_customer ON usage_daily_customer (customer_id, day);

-- The same aggregates as ingestion adds (see src/common/rollup.rs).
INSERT INTO usage_daily (kind, day, service, model, provider, cache_hit, events, quantity,
    input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, cost, unpriced,
    latency_sum, latency_count, status_count, error_count, up_count)
SELECT kind, time / 86400000000, COALESCE(service, ''), COALESCE(model, ''),
    COALESCE(provider, ''), CASE WHEN cache_hit IS NULL THEN -1 WHEN cache_hit THEN 1 ELSE 0 END,
    COUNT(*), COALESCE(SUM(quantity), 0), COALESCE(SUM(input_tokens), 0),
    COALESCE(SUM(output_tokens), 0), COALESCE(SUM(cache_read_tokens), 0),
    COALESCE(SUM(cache_write_tokens), 0), COALESCE(SUM(cost), 0),
    SUM(CASE WHEN model IS NOT NULL AND cost_source = 'unpriced' THEN 1 ELSE 0 END),
    CAST(COALESCE(SUM(latency_ms), 0) AS REAL), COUNT(latency_ms), COUNT(status_code),
    SUM(CASE WHEN status_code >= 500 THEN 1 ELSE 0 END), SUM(CASE WHEN up THEN 1 ELSE 0 END)
FROM events
GROUP BY 1, 2, 3, 4, 5, 6;

INSERT INTO usage_daily_customer (kind, day, customer_id, service, llm, events, quantity,
    input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, cost, unpriced,
    latency_sum, latency_count, status_count, error_count, up_count)
SELECT kind, time / 86400000000, COALESCE(customer_id, ''), COALESCE(service, ''),
    CASE WHEN model IS NULL THEN 0 ELSE 1 END,
    COUNT(*), COALESCE(SUM(quantity), 0), COALESCE(SUM(input_tokens), 0),
    COALESCE(SUM(output_tokens), 0), COALESCE(SUM(cache_read_tokens), 0),
    COALESCE(SUM(cache_write_tokens), 0), COALESCE(SUM(cost), 0),
    SUM(CASE WHEN model IS NOT NULL AND cost_source = 'unpriced' THEN 1 ELSE 0 END),
    CAST(COALESCE(SUM(latency_ms), 0) AS REAL), COUNT(latency_ms), COUNT(status_code),
    SUM(CASE WHEN status_code >= 500 THEN 1 ELSE 0 END), SUM(CASE WHEN up THEN 1 ELSE 0 END)
FROM events
GROUP BY 1, 2, 3, 4, 5;

-- Whole days of one service now come from the rollups, and the partial days at the
-- edges of a span from (kind, time): this index only slowed ingestion down.
DROP INDEX events_service_time;
