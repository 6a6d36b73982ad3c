-- Acting on segments: the outbox of actions caused by transitions, the
-- destinations they go to and the automations that create them.
--
-- Times are INTEGER unix nanoseconds in UTC (NULL for "never"), as in
-- 00001_init.

-- +goose Up
-- One row per action. A lane is (profile_id, destination): only its first
-- unfinished item by (due, id) is handed out, so a lane is delivered in
-- order. claimed_until is the lease of the worker delivering it.
CREATE TABLE outbox (
    id            INTEGER PRIMARY KEY,
    transition_id INTEGER NOT NULL,
    profile_id    TEXT NOT NULL,
    destination   TEXT NOT NULL,
    automation    TEXT NOT NULL,
    key           TEXT NOT NULL,
    payload       TEXT,
    state         TEXT NOT NULL,
    attempts      INTEGER NOT NULL DEFAULT 0,
    due           INTEGER NOT NULL,
    next_at       INTEGER NOT NULL,
    claimed_until INTEGER,
    created_at    INTEGER NOT NULL,
    finished_at   INTEGER,
    last_error    TEXT NOT NULL DEFAULT '',
    capped        INTEGER NOT NULL DEFAULT 0
);
-- Pending items only: the claim scans these by due time and looks up
-- each lane's head; finished items leave the index.
CREATE INDEX outbox_due ON outbox (next_at) WHERE state = 'pending';
CREATE INDEX outbox_lane ON outbox (profile_id, destination, due, id) WHERE state = 'pending';
CREATE INDEX outbox_state ON outbox (state, id);
CREATE INDEX outbox_delivered ON outbox (profile_id, finished_at) WHERE state = 'delivered' AND capped = 1;

CREATE TABLE destinations (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL UNIQUE,
    kind       TEXT NOT NULL,
    config     TEXT,
    sealed     BLOB,
    rate_limit REAL NOT NULL DEFAULT 0,
    created_at INTEGER
);

CREATE TABLE automations (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    segment     TEXT NOT NULL,
    on_event    TEXT NOT NULL,
    delay       INTEGER NOT NULL DEFAULT 0,
    recheck     TEXT NOT NULL DEFAULT '',
    destination TEXT NOT NULL,
    options     TEXT,
    enabled     INTEGER NOT NULL,
    hook        INTEGER NOT NULL DEFAULT 0,
    created_at  INTEGER,
    updated_at  INTEGER
);

-- +goose Down
DROP TABLE automations;
DROP TABLE destinations;
DROP TABLE outbox;
