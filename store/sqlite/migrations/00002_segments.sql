-- Segments: definition versions, current memberships, the transition log,
-- segment sizes over time and static segment lists.
--
-- Times are INTEGER unix nanoseconds in UTC (NULL for "never"), as in
-- 00001_init. JSON columns hold TEXT.

-- +goose Up
-- Every version of every computed trait and segment definition; a
-- version with deleted_at set records the removal.
CREATE TABLE definitions (
    name       TEXT NOT NULL,
    version    INTEGER NOT NULL,
    kind       TEXT NOT NULL,
    text       TEXT NOT NULL DEFAULT '',
    body       TEXT,
    applied_at INTEGER,
    deleted_at INTEGER,
    PRIMARY KEY (name, version)
) WITHOUT ROWID;

-- Current memberships. WITHOUT ROWID: the rows are small and always
-- reached by (segment, profile_id), so the table is its own index and
-- Members pages straight along it.
CREATE TABLE memberships (
    segment    TEXT NOT NULL,
    profile_id TEXT NOT NULL,
    since      INTEGER,
    version    INTEGER NOT NULL,
    PRIMARY KEY (segment, profile_id)
) WITHOUT ROWID;
CREATE INDEX memberships_profile ON memberships (profile_id, segment);

-- The transition log. ApplyResolution numbers transitions itself from
-- transition_state (below), as Append numbers events: IDs are a cursor for
-- consumers and are never reused, even after a profile's transitions were
-- deleted.
CREATE TABLE transitions (
    id         INTEGER PRIMARY KEY,
    segment    TEXT NOT NULL,
    profile_id TEXT NOT NULL,
    entered    INTEGER NOT NULL,
    at         INTEGER,
    version    INTEGER NOT NULL,
    reason     TEXT NOT NULL DEFAULT '',
    event_seq  INTEGER NOT NULL DEFAULT 0,
    evidence   TEXT,
    act        INTEGER NOT NULL
);
CREATE INDEX transitions_segment ON transitions (segment, id);
CREATE INDEX transitions_profile ON transitions (profile_id, id);

CREATE TABLE transition_state (
    id      INTEGER PRIMARY KEY CHECK (id = 1),
    last_id INTEGER NOT NULL
);
INSERT INTO transition_state (id, last_id) VALUES (1, 0);

-- One sample per (segment, instant); a second sample at the same instant
-- replaces the first.
CREATE TABLE segment_sizes (
    segment TEXT NOT NULL,
    at      INTEGER NOT NULL,
    size    INTEGER NOT NULL,
    PRIMARY KEY (segment, at)
) WITHOUT ROWID;

CREATE TABLE static_members (
    segment    TEXT NOT NULL,
    profile_id TEXT NOT NULL,
    PRIMARY KEY (segment, profile_id)
) WITHOUT ROWID;
CREATE INDEX static_members_profile ON static_members (profile_id);

-- +goose Down
DROP TABLE static_members;
DROP TABLE segment_sizes;
DROP TABLE transition_state;
DROP TABLE transitions;
DROP TABLE memberships;
DROP TABLE definitions;
