-- The ingest log (sqlite/ingest_log.rs): event groups are acknowledged once appended to
-- a log file of their own (`<database>-ingest`) and folded into `events`, the rollups
-- and the bitmaps later, in large runs. Each fold records here, in its own transaction,
-- the last log entry it folded, so that after a crash the entries after it are folded
-- again and none twice.
CREATE TABLE ingest_folded (
    seq INTEGER NOT NULL
);
INSERT INTO ingest_folded (seq) VALUES (0);
