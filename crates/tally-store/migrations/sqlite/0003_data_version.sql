-- How far the stored data has come, for caches in the tally processes: each counter is
-- raised by one in the same transaction as every write that changes the data it covers,
-- so a reader that sees a value also sees all the data committed with it, and a cache
-- keyed by the values it read can never serve data older than them. Several processes
-- sharing one database see each other's writes through these rows.
--
-- - entities: plans, customers, subscriptions and their changes and cancellations,
--   invoices, costs, marketing spend, services and alert rules (everything the revenue
--   figures and the alerts are computed from besides events);
-- - events: every insert that stores at least one new event (usage events, health
--   checks, gauges, and the services they register).
--
-- Separate rows, so that ingesting events never invalidates a revenue figure, and on
-- PostgreSQL an entity write never waits on an ingest's row lock.
CREATE TABLE data_version (
    name    TEXT PRIMARY KEY NOT NULL,
    version INTEGER NOT NULL
);
INSERT INTO data_version (name, version) VALUES ('entities', 0), ('events', 0);
