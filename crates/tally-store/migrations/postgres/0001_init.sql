-- tally's PostgreSQL schema (the same tables and encodings as the SQLite one).
--
-- Encodings (shared with the SQLite schema so the queries can be too):
-- - times: BIGINT microseconds since the Unix epoch (UTC), always >= 0;
-- - money: BIGINT minor units of the reporting currency;
-- - event quantities and costs: BIGINT micros (6 decimals);
-- - exact decimals (discounts, alert thresholds): TEXT, normalized by rust_decimal;
-- - enums: their short TEXT names ('month', 'paid', 'usage', 'infrastructure', ...);
-- - months: TEXT 'YYYY-MM', which sorts chronologically.
-- Keys and grouped-by text use COLLATE "C" so that orders (and therefore cursors) are
-- byte orders, the same as SQLite's, whatever the database's default collation.
-- References are checked by the store, not by foreign keys, so that it can name the
-- missing entity in its error.

CREATE TABLE plans (
    id       TEXT COLLATE "C" PRIMARY KEY,
    name     TEXT NOT NULL,
    tier     TEXT NOT NULL,
    interval TEXT NOT NULL,
    amount   BIGINT NOT NULL,
    currency TEXT NOT NULL
);

CREATE TABLE customers (
    id         TEXT COLLATE "C" PRIMARY KEY,
    name       TEXT,
    email      TEXT,
    created_at BIGINT NOT NULL,
    channel    TEXT COLLATE "C"
);

CREATE TABLE subscriptions (
    id               TEXT COLLATE "C" PRIMARY KEY,
    customer_id      TEXT COLLATE "C" NOT NULL,
    plan_id          TEXT COLLATE "C" NOT NULL,
    quantity         BIGINT NOT NULL,
    discount_percent TEXT NOT NULL,
    started_at       BIGINT NOT NULL,
    trial_ends_at    BIGINT,
    canceled_at      BIGINT
);
CREATE INDEX subscriptions_customer ON subscriptions (customer_id);

CREATE TABLE subscription_changes (
    subscription_id  TEXT COLLATE "C" NOT NULL,
    effective_at     BIGINT NOT NULL,
    plan_id          TEXT COLLATE "C",
    quantity         BIGINT,
    discount_percent TEXT,
    PRIMARY KEY (subscription_id, effective_at)
);

CREATE TABLE invoices (
    id          TEXT COLLATE "C" PRIMARY KEY,
    customer_id TEXT COLLATE "C" NOT NULL,
    amount      BIGINT NOT NULL,
    currency    TEXT NOT NULL,
    status      TEXT NOT NULL,
    issued_at   BIGINT NOT NULL,
    paid_at     BIGINT
);
CREATE INDEX invoices_issued_at ON invoices (issued_at);
CREATE INDEX invoices_paid_at ON invoices (paid_at) WHERE status = 'paid';

CREATE TABLE costs (
    month    TEXT COLLATE "C" NOT NULL,
    category TEXT COLLATE "C" NOT NULL,
    service  TEXT COLLATE "C" NOT NULL,
    amount   BIGINT NOT NULL,
    PRIMARY KEY (month, category, service)
);

CREATE TABLE marketing_spend (
    month   TEXT COLLATE "C" NOT NULL,
    channel TEXT COLLATE "C" NOT NULL,
    amount  BIGINT NOT NULL,
    PRIMARY KEY (month, channel)
);

CREATE TABLE services (
    name         TEXT COLLATE "C" PRIMARY KEY,
    display_name TEXT,
    unit_type    TEXT,
    health_url   TEXT
);

-- A heap like every PostgreSQL table; the primary key on the clients' ids deduplicates.
CREATE TABLE events (
    id                 TEXT COLLATE "C" PRIMARY KEY,
    kind               TEXT NOT NULL,
    time               BIGINT NOT NULL,
    customer_id        TEXT COLLATE "C",
    service            TEXT COLLATE "C",
    quantity           BIGINT NOT NULL,
    unit               TEXT,
    model              TEXT COLLATE "C",
    provider           TEXT COLLATE "C",
    input_tokens       BIGINT NOT NULL,
    cache_read_tokens  BIGINT NOT NULL,
    cache_write_tokens BIGINT NOT NULL,
    output_tokens      BIGINT NOT NULL,
    cache_hit          BOOLEAN,
    latency_ms         DOUBLE PRECISION,
    status_code        INTEGER,
    cost               BIGINT NOT NULL,
    cost_source        TEXT NOT NULL,
    up                 BOOLEAN,
    gauge_name         TEXT COLLATE "C",
    gauge_value        DOUBLE PRECISION
);
CREATE INDEX events_kind_time ON events (kind, time);
CREATE INDEX events_service_time ON events (service, time);
CREATE INDEX events_customer_time ON events (customer_id, time);
CREATE INDEX events_gauge ON events (gauge_name, time) WHERE kind = 'gauge';

CREATE TABLE api_keys (
    id          TEXT COLLATE "C" PRIMARY KEY,
    name        TEXT NOT NULL,
    role        TEXT NOT NULL,
    secret_hash TEXT COLLATE "C" NOT NULL UNIQUE,
    created_at  BIGINT NOT NULL,
    revoked_at  BIGINT
);

CREATE TABLE alert_rules (
    metric    TEXT COLLATE "C" PRIMARY KEY,
    direction TEXT NOT NULL,
    critical  TEXT NOT NULL,
    warning   TEXT NOT NULL,
    info      TEXT,
    enabled   BOOLEAN NOT NULL
);

-- The defaults of metrics.md ("Alerts").
INSERT INTO alert_rules (metric, direction, critical, warning, info, enabled) VALUES
    ('churn_rate', 'above', '5', '4', NULL, TRUE),
    ('mrr_growth', 'below', '-5', '0', NULL, TRUE),
    ('error_rate', 'above', '5', '1', NULL, TRUE),
    ('uptime', 'below', '99', '99.9', NULL, TRUE),
    ('payment_success_rate', 'below', '90', '97', NULL, TRUE),
    ('gross_margin', 'below', '40', '60', NULL, TRUE);

-- Ids are the cursor of the newest-first listing.
CREATE TABLE audit_log (
    id      BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at      BIGINT NOT NULL,
    key_id  TEXT,
    method  TEXT NOT NULL,
    route   TEXT NOT NULL,
    status  INTEGER NOT NULL,
    client  TEXT
);
