-- Kiln's initial schema for PostgreSQL.
--
-- Times are timestamptz (microsecond precision), NULL for "never". Text
-- keys use the "C" collation so that ordering and prefix ranges are
-- bytewise, as in Go and SQLite. JSON columns are json, not jsonb: Kiln
-- reads them whole, json only validates on the way in (cheaper for
-- ingest), and it keeps strings jsonb refuses (\u0000), which would
-- otherwise make a customer's odd trait fail every retry of a write.

-- +goose Up
CREATE TABLE sources (
    id         text COLLATE "C" PRIMARY KEY,
    name       text NOT NULL UNIQUE,
    kind       text NOT NULL DEFAULT '',
    store      text NOT NULL DEFAULT '',
    secret     text NOT NULL DEFAULT '',
    created_at timestamptz
);

CREATE TABLE keys (
    id         text COLLATE "C" PRIMARY KEY,
    kind       text NOT NULL,
    name       text NOT NULL DEFAULT '',
    source_id  text NOT NULL DEFAULT '',
    hash       text NOT NULL UNIQUE,
    prefix     text NOT NULL DEFAULT '',
    created_at timestamptz,
    revoked_at timestamptz
);
CREATE INDEX keys_prefix ON keys (prefix);

-- seq comes from a sequence; Append serialises appenders (an advisory
-- lock) so that Seqs become visible in order and a consumer tailing by Seq
-- never skips one still being committed.
CREATE TABLE events (
    seq          bigserial PRIMARY KEY,
    message_id   text NOT NULL,
    source_id    text NOT NULL,
    type         text NOT NULL,
    name         text NOT NULL DEFAULT '',
    user_id      text NOT NULL DEFAULT '',
    anonymous_id text NOT NULL DEFAULT '',
    previous_id  text NOT NULL DEFAULT '',
    group_id     text NOT NULL DEFAULT '',
    anchor       text NOT NULL DEFAULT '',
    ts           timestamptz,
    received_at  timestamptz,
    store        text NOT NULL DEFAULT '',
    -- {"properties":{...},"traits":{...},"context":{...}}, NULL when all are empty
    payload      json,
    UNIQUE (source_id, message_id)
);
CREATE INDEX events_anchor_ts ON events (anchor, ts);

CREATE TABLE rejects (
    id          bigserial PRIMARY KEY,
    source_id   text NOT NULL DEFAULT '',
    received_at timestamptz,
    origin      text NOT NULL DEFAULT '',
    idx         integer NOT NULL DEFAULT 0,
    field       text NOT NULL DEFAULT '',
    reason      text NOT NULL DEFAULT '',
    payload     bytea
);
CREATE INDEX rejects_source ON rejects (source_id, id);

CREATE TABLE profiles (
    id          text COLLATE "C" PRIMARY KEY,
    created_at  timestamptz,
    updated_at  timestamptz,
    first_seen  timestamptz,
    last_seen   timestamptz,
    event_count bigint NOT NULL DEFAULT 0,
    traits      json
);

CREATE TABLE identities (
    kind       text COLLATE "C" NOT NULL,
    value      text COLLATE "C" NOT NULL,
    profile_id text COLLATE "C" NOT NULL,
    source_id  text NOT NULL DEFAULT '',
    first_seen timestamptz,
    PRIMARY KEY (kind, value)
);
CREATE INDEX identities_profile ON identities (profile_id);
-- ListProfiles searches by case-insensitive value prefix.
CREATE INDEX identities_value_lower ON identities (lower(value));

CREATE TABLE consent (
    profile_id text COLLATE "C" NOT NULL,
    channel    text COLLATE "C" NOT NULL,
    granted    boolean NOT NULL,
    source     text NOT NULL DEFAULT '',
    at         timestamptz,
    PRIMARY KEY (profile_id, channel)
);

CREATE TABLE merges (
    id         bigserial PRIMARY KEY,
    into_id    text COLLATE "C" NOT NULL,
    from_id    text COLLATE "C" NOT NULL,
    identities json NOT NULL,
    event_seq  bigint NOT NULL DEFAULT 0,
    rule       text NOT NULL DEFAULT '',
    at         timestamptz,
    undone_at  timestamptz,
    -- From's profile row and consent as they were at merge time, for UndoMerge.
    snapshot   json NOT NULL
);
CREATE INDEX merges_into ON merges (into_id);
CREATE INDEX merges_from ON merges (from_id);

CREATE TABLE suppressions (
    kind       text COLLATE "C" NOT NULL,
    value      text COLLATE "C" NOT NULL,
    reason     text NOT NULL DEFAULT '',
    created_at timestamptz,
    PRIMARY KEY (kind, value)
);

CREATE TABLE checkpoints (
    name text COLLATE "C" PRIMARY KEY,
    seq  bigint NOT NULL
);

-- +goose Down
DROP TABLE checkpoints;
DROP TABLE suppressions;
DROP TABLE merges;
DROP TABLE consent;
DROP TABLE identities;
DROP TABLE profiles;
DROP TABLE rejects;
DROP TABLE events;
DROP TABLE keys;
DROP TABLE sources;
