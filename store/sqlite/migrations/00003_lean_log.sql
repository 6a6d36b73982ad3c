-- Ingest writes only the log itself, so acknowledging events costs one
-- append-only B-tree: no index with random insert order on the hot path.
--
-- * Retries are recognised by an in-memory window of recent message ids
--   (dedup.go), not by a unique index over all time.
-- * The anchor index that finds a profile's events is built by the
--   processor, off the ingest path, up to the Seq it has processed
--   (index_state.indexed_seq); newer events are found by scanning the short
--   unindexed tail of the log.

-- +goose Up
DROP INDEX IF EXISTS events_source_message;
DROP INDEX IF EXISTS events_anchor_ts;
CREATE TABLE event_anchors (
    anchor TEXT NOT NULL,
    ts     INTEGER NOT NULL,
    seq    INTEGER NOT NULL,
    PRIMARY KEY (anchor, ts, seq)
) WITHOUT ROWID;
INSERT INTO event_anchors (anchor, ts, seq) SELECT anchor, coalesce(ts, 0), seq FROM events WHERE anchor != '';
CREATE TABLE index_state (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    indexed_seq INTEGER NOT NULL
);
INSERT INTO index_state (id, indexed_seq) SELECT 1, coalesce(max(seq), 0) FROM events;

-- +goose Down
DROP TABLE index_state;
DROP TABLE event_anchors;
CREATE INDEX events_anchor_ts ON events (anchor, ts);
CREATE UNIQUE INDEX events_source_message ON events (source_id, message_id);
