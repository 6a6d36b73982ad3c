-- Acting on segments: the outbox of actions caused by transitions, the
-- destinations they go to and the automations that create them.

-- +goose Up
-- One row per action. A lane is (profile_id, destination): only its first
-- unfinished item by (due, id) is handed out, so a lane is delivered in
-- order. claimed_until is the lease of the worker delivering it.
CREATE TABLE outbox (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    transition_id BIGINT NOT NULL,
    profile_id    TEXT NOT NULL,
    destination   TEXT NOT NULL,
    automation    TEXT NOT NULL,
    key           TEXT NOT NULL,
    payload       JSONB,
    state         TEXT NOT NULL,
    attempts      INTEGER NOT NULL DEFAULT 0,
    due           TIMESTAMPTZ NOT NULL,
    next_at       TIMESTAMPTZ NOT NULL,
    claimed_until TIMESTAMPTZ,
    created_at    TIMESTAMPTZ NOT NULL,
    finished_at   TIMESTAMPTZ,
    last_error    TEXT NOT NULL DEFAULT '',
    capped        BOOLEAN NOT NULL DEFAULT false
);
CREATE INDEX outbox_due ON outbox (next_at) WHERE state = 'pending';
CREATE INDEX outbox_lane ON outbox (profile_id, destination, due, id) WHERE state = 'pending';
CREATE INDEX outbox_state ON outbox (state, id);
CREATE INDEX outbox_delivered ON outbox (profile_id, finished_at) WHERE state = 'delivered' AND capped;

CREATE TABLE destinations (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL UNIQUE,
    kind       TEXT NOT NULL,
    config     JSONB,
    sealed     BYTEA,
    rate_limit DOUBLE PRECISION NOT NULL DEFAULT 0,
    created_at TIMESTAMPTZ
);

CREATE TABLE automations (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    segment     TEXT NOT NULL,
    on_event    TEXT NOT NULL,
    delay       BIGINT NOT NULL DEFAULT 0,
    recheck     TEXT NOT NULL DEFAULT '',
    destination TEXT NOT NULL,
    options     JSONB,
    enabled     BOOLEAN NOT NULL,
    hook        BOOLEAN NOT NULL DEFAULT false,
    created_at  TIMESTAMPTZ,
    updated_at  TIMESTAMPTZ
);

-- +goose Down
DROP TABLE automations;
DROP TABLE destinations;
DROP TABLE outbox;
