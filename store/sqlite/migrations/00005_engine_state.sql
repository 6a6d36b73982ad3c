-- Engine state that is not derived from the log alone, so that a restart
-- or a rebuild finds it as it was: the fitted customer models (a named
-- blob), the model traits they set on each profile, and snapshots of the
-- engine's in-memory state (written in parts, made current by one row in
-- engine_blobs, so a half-written snapshot is never read).

-- +goose Up
CREATE TABLE engine_blobs (
    name TEXT PRIMARY KEY,
    data BLOB NOT NULL
) WITHOUT ROWID;

CREATE TABLE model_traits (
    profile_id TEXT PRIMARY KEY,
    traits     TEXT NOT NULL
) WITHOUT ROWID;

CREATE TABLE snapshot_parts (
    generation INTEGER NOT NULL,
    part       INTEGER NOT NULL,
    data       BLOB NOT NULL,
    PRIMARY KEY (generation, part)
);

-- +goose Down
DROP TABLE snapshot_parts;
DROP TABLE model_traits;
DROP TABLE engine_blobs;
