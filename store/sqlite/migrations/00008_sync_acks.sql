-- Reconciliation (issue 12): what each vendor destination acknowledged
-- of a segment's membership, per profile. The dispatcher sends only the
-- difference between the current membership and this; rows are written
-- only when the vendor confirmed a change (or a reconciliation read the
-- vendor's membership). segment is '' for a profile's attributes
-- (upserts). Times are INTEGER unix nanoseconds in UTC.

-- +goose Up
CREATE TABLE sync_acks (
    destination TEXT NOT NULL,
    segment     TEXT NOT NULL,
    profile_id  TEXT NOT NULL,
    in_list     INTEGER NOT NULL,
    traits_hash TEXT NOT NULL DEFAULT '',
    acked_at    INTEGER NOT NULL,
    PRIMARY KEY (destination, segment, profile_id)
) WITHOUT ROWID;

-- +goose Down
DROP TABLE sync_acks;
