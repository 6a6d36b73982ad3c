-- Kiln's initial schema for SQLite.
--
-- Times are INTEGER unix nanoseconds in UTC (NULL for "never"), so that
-- ordering by a time column is ordering by time. JSON columns hold TEXT.

-- +goose Up
CREATE TABLE sources (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL UNIQUE,
    kind       TEXT NOT NULL DEFAULT '',
    store      TEXT NOT NULL DEFAULT '',
    secret     TEXT NOT NULL DEFAULT '',
    created_at INTEGER
);

CREATE TABLE keys (
    id         TEXT PRIMARY KEY,
    kind       TEXT NOT NULL,
    name       TEXT NOT NULL DEFAULT '',
    source_id  TEXT NOT NULL DEFAULT '',
    hash       TEXT NOT NULL UNIQUE,
    prefix     TEXT NOT NULL DEFAULT '',
    created_at INTEGER,
    revoked_at INTEGER
);
CREATE INDEX keys_prefix ON keys (prefix);

-- Append assigns seq itself from log_state (below) rather than through
-- AUTOINCREMENT, which costs an extra write per row.
CREATE TABLE events (
    seq          INTEGER PRIMARY KEY,
    message_id   TEXT NOT NULL,
    source_id    TEXT NOT NULL,
    type         TEXT NOT NULL,
    name         TEXT NOT NULL DEFAULT '',
    user_id      TEXT NOT NULL DEFAULT '',
    anonymous_id TEXT NOT NULL DEFAULT '',
    previous_id  TEXT NOT NULL DEFAULT '',
    group_id     TEXT NOT NULL DEFAULT '',
    anchor       TEXT NOT NULL DEFAULT '',
    ts           INTEGER,
    received_at  INTEGER,
    store        TEXT NOT NULL DEFAULT '',
    -- {"properties":{...},"traits":{...},"context":{...}}, NULL when all are empty
    payload      TEXT
);
CREATE UNIQUE INDEX events_source_message ON events (source_id, message_id);
CREATE INDEX events_anchor_ts ON events (anchor, ts);

-- The highest Seq ever given out. A Seq is never reused, even after the
-- newest events were deleted, because consumers checkpoint by Seq.
CREATE TABLE log_state (
    id       INTEGER PRIMARY KEY CHECK (id = 1),
    last_seq INTEGER NOT NULL
);
INSERT INTO log_state (id, last_seq) VALUES (1, 0);

CREATE TABLE rejects (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    source_id   TEXT NOT NULL DEFAULT '',
    received_at INTEGER,
    origin      TEXT NOT NULL DEFAULT '',
    idx         INTEGER NOT NULL DEFAULT 0,
    field       TEXT NOT NULL DEFAULT '',
    reason      TEXT NOT NULL DEFAULT '',
    payload     BLOB
);
CREATE INDEX rejects_source ON rejects (source_id, id);

CREATE TABLE profiles (
    id          TEXT PRIMARY KEY,
    created_at  INTEGER,
    updated_at  INTEGER,
    first_seen  INTEGER,
    last_seen   INTEGER,
    event_count INTEGER NOT NULL DEFAULT 0,
    traits      TEXT
);

CREATE TABLE identities (
    kind       TEXT NOT NULL,
    value      TEXT NOT NULL,
    profile_id TEXT NOT NULL,
    source_id  TEXT NOT NULL DEFAULT '',
    first_seen INTEGER,
    PRIMARY KEY (kind, value)
);
CREATE INDEX identities_profile ON identities (profile_id);
-- ListProfiles searches by case-insensitive value prefix.
CREATE INDEX identities_value_lower ON identities (lower(value));

CREATE TABLE consent (
    profile_id TEXT NOT NULL,
    channel    TEXT NOT NULL,
    granted    INTEGER NOT NULL,
    source     TEXT NOT NULL DEFAULT '',
    at         INTEGER,
    PRIMARY KEY (profile_id, channel)
);

CREATE TABLE merges (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    into_id    TEXT NOT NULL,
    from_id    TEXT NOT NULL,
    identities TEXT NOT NULL,
    event_seq  INTEGER NOT NULL DEFAULT 0,
    rule       TEXT NOT NULL DEFAULT '',
    at         INTEGER,
    undone_at  INTEGER,
    -- From's profile row and consent as they were at merge time, for UndoMerge.
    snapshot   TEXT NOT NULL
);
CREATE INDEX merges_into ON merges (into_id);
CREATE INDEX merges_from ON merges (from_id);

CREATE TABLE suppressions (
    kind       TEXT NOT NULL,
    value      TEXT NOT NULL,
    reason     TEXT NOT NULL DEFAULT '',
    created_at INTEGER,
    PRIMARY KEY (kind, value)
);

CREATE TABLE checkpoints (
    name TEXT PRIMARY KEY,
    seq  INTEGER NOT NULL
);

-- +goose Down
DROP TABLE checkpoints;
DROP TABLE suppressions;
DROP TABLE merges;
DROP TABLE consent;
DROP TABLE identities;
DROP TABLE profiles;
DROP TABLE rejects;
DROP TABLE log_state;
DROP TABLE events;
DROP TABLE keys;
DROP TABLE sources;
