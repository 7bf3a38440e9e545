-- tally's SQLite schema.
--
-- Encodings (shared with the PostgreSQL schema so the queries can be too):
-- - times: INTEGER microseconds since the Unix epoch (UTC), always >= 0;
-- - money: INTEGER minor units of the reporting currency;
-- - event quantities and costs: INTEGER micros (6 decimals);
-- - exact decimals (discounts, alert thresholds): TEXT, normalized by rust_decimal;
-- - enums: their short TEXT names ('month', 'paid', 'usage', 'infrastructure', ...);
-- - months: TEXT 'YYYY-MM', which sorts chronologically;
-- - booleans: INTEGER 0/1.
-- References are checked by the store, not by foreign keys, so that it can name the
-- missing entity in its error.

CREATE TABLE plans (
    id       TEXT PRIMARY KEY NOT NULL,
    name     TEXT NOT NULL,
    tier     TEXT NOT NULL,
    interval TEXT NOT NULL,
    amount   INTEGER NOT NULL,
    currency TEXT NOT NULL
);

CREATE TABLE customers (
    id         TEXT PRIMARY KEY NOT NULL,
    name       TEXT,
    email      TEXT,
    created_at INTEGER NOT NULL,
    channel    TEXT
);

CREATE TABLE subscriptions (
    id               TEXT PRIMARY KEY NOT NULL,
    customer_id      TEXT NOT NULL,
    plan_id          TEXT NOT NULL,
    quantity         INTEGER NOT NULL,
    discount_percent TEXT NOT NULL,
    started_at       INTEGER NOT NULL,
    trial_ends_at    INTEGER,
    canceled_at      INTEGER
);
CREATE INDEX subscriptions_customer ON subscriptions (customer_id);

CREATE TABLE subscription_changes (
    subscription_id  TEXT NOT NULL,
    effective_at     INTEGER NOT NULL,
    plan_id          TEXT,
    quantity         INTEGER,
    discount_percent TEXT,
    PRIMARY KEY (subscription_id, effective_at)
);

CREATE TABLE invoices (
    id          TEXT PRIMARY KEY NOT NULL,
    customer_id TEXT NOT NULL,
    amount      INTEGER NOT NULL,
    currency    TEXT NOT NULL,
    status      TEXT NOT NULL,
    issued_at   INTEGER NOT NULL,
    paid_at     INTEGER
);
CREATE INDEX invoices_issued_at ON invoices (issued_at);
CREATE INDEX invoices_paid_at ON invoices (paid_at) WHERE status = 'paid';

CREATE TABLE costs (
    month    TEXT NOT NULL,
    category TEXT NOT NULL,
    service  TEXT NOT NULL,
    amount   INTEGER NOT NULL,
    PRIMARY KEY (month, category, service)
);

CREATE TABLE marketing_spend (
    month   TEXT NOT NULL,
    channel TEXT NOT NULL,
    amount  INTEGER NOT NULL,
    PRIMARY KEY (month, channel)
);

CREATE TABLE services (
    name         TEXT PRIMARY KEY NOT NULL,
    display_name TEXT,
    unit_type    TEXT,
    health_url   TEXT
);

-- A rowid table: rows are appended in arrival order instead of being clustered on the
-- clients' random ids, and `id` gets its own unique index for deduplication.
CREATE TABLE events (
    id                 TEXT NOT NULL UNIQUE,
    kind               TEXT NOT NULL,
    time               INTEGER NOT NULL,
    customer_id        TEXT,
    service            TEXT,
    quantity           INTEGER NOT NULL,
    unit               TEXT,
    model              TEXT,
    provider           TEXT,
    input_tokens       INTEGER NOT NULL,
    cache_read_tokens  INTEGER NOT NULL,
    cache_write_tokens INTEGER NOT NULL,
    output_tokens      INTEGER NOT NULL,
    cache_hit          INTEGER,
    latency_ms         REAL,
    status_code        INTEGER,
    cost               INTEGER NOT NULL,
    cost_source        TEXT NOT NULL,
    up                 INTEGER,
    gauge_name         TEXT,
    gauge_value        REAL
);
CREATE INDEX events_kind_time ON events (kind, time);
CREATE INDEX events_service_time ON events (service, time);
CREATE INDEX events_customer_time ON events (customer_id, time);
CREATE INDEX events_gauge ON events (gauge_name, time) WHERE kind = 'gauge';

CREATE TABLE api_keys (
    id          TEXT PRIMARY KEY NOT NULL,
    name        TEXT NOT NULL,
    role        TEXT NOT NULL,
    secret_hash TEXT NOT NULL UNIQUE,
    created_at  INTEGER NOT NULL,
    revoked_at  INTEGER
);

CREATE TABLE alert_rules (
    metric    TEXT PRIMARY KEY NOT NULL,
    direction TEXT NOT NULL,
    critical  TEXT NOT NULL,
    warning   TEXT NOT NULL,
    info      TEXT,
    enabled   INTEGER NOT NULL
);

-- The defaults of metrics.md ("Alerts").
INSERT INTO alert_rules (metric, direction, critical, warning, info, enabled) VALUES
    ('churn_rate', 'above', '5', '4', NULL, 1),
    ('mrr_growth', 'below', '-5', '0', NULL, 1),
    ('error_rate', 'above', '5', '1', NULL, 1),
    ('uptime', 'below', '99', '99.9', NULL, 1),
    ('payment_success_rate', 'below', '90', '97', NULL, 1),
    ('gross_margin', 'below', '40', '60', NULL, 1);

-- AUTOINCREMENT so that ids are never reused after deletions: they are the cursor.
CREATE TABLE audit_log (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    at      INTEGER NOT NULL,
    key_id  TEXT,
    method  TEXT NOT NULL,
    route   TEXT NOT NULL,
    status  INTEGER NOT NULL,
    client  TEXT
);
