-- Per-destination delivery: each destination claims its own due items
-- and reports its own backlog, by this index, so a destination with a
-- large backlog it cannot deliver (a hung vendor) costs the others
-- nothing. due is in the index so the backlog (count, oldest due) is
-- read from the index alone.

-- +goose Up
CREATE INDEX outbox_dest ON outbox (destination, next_at, due, id) WHERE state = 'pending';

-- +goose Down
DROP INDEX outbox_dest;
