-- Segments: definition versions, current memberships, the transition log,
-- segment sizes over time and static segment lists.
--
-- As in 00001_init: times are timestamptz (NULL for "never"), text keys
-- use the "C" collation (bytewise order, as in Go and SQLite), JSON
-- columns are json.

-- +goose Up
-- Every version of every computed trait and segment definition; a
-- version with deleted_at set records the removal.
CREATE TABLE definitions (
    name       text COLLATE "C" NOT NULL,
    version    bigint NOT NULL,
    kind       text NOT NULL,
    text       text NOT NULL DEFAULT '',
    body       json,
    applied_at timestamptz,
    deleted_at timestamptz,
    PRIMARY KEY (name, version)
);

CREATE TABLE memberships (
    segment    text COLLATE "C" NOT NULL,
    profile_id text COLLATE "C" NOT NULL,
    since      timestamptz,
    version    bigint NOT NULL,
    PRIMARY KEY (segment, profile_id)
);
CREATE INDEX memberships_profile ON memberships (profile_id, segment);

-- The transition log. IDs come from transition_ids, reserved a block at a
-- time by ApplyResolution under an advisory lock, so that IDs become
-- visible in increasing order and a consumer tailing by ID never skips
-- one whose transaction is still committing.
CREATE SEQUENCE transition_ids;
CREATE TABLE transitions (
    id         bigint PRIMARY KEY,
    segment    text COLLATE "C" NOT NULL,
    profile_id text COLLATE "C" NOT NULL,
    entered    boolean NOT NULL,
    at         timestamptz,
    version    bigint NOT NULL,
    reason     text NOT NULL DEFAULT '',
    event_seq  bigint NOT NULL DEFAULT 0,
    evidence   json,
    act        boolean NOT NULL
);
CREATE INDEX transitions_segment ON transitions (segment, id);
CREATE INDEX transitions_profile ON transitions (profile_id, id);

-- One sample per (segment, instant); a second sample at the same instant
-- replaces the first.
CREATE TABLE segment_sizes (
    segment text COLLATE "C" NOT NULL,
    at      timestamptz NOT NULL,
    size    bigint NOT NULL,
    PRIMARY KEY (segment, at)
);

CREATE TABLE static_members (
    segment    text COLLATE "C" NOT NULL,
    profile_id text COLLATE "C" NOT NULL,
    PRIMARY KEY (segment, profile_id)
);
CREATE INDEX static_members_profile ON static_members (profile_id);

-- +goose Down
DROP TABLE static_members;
DROP TABLE segment_sizes;
DROP TABLE transitions;
DROP SEQUENCE transition_ids;
DROP TABLE memberships;
DROP TABLE definitions;
