-- Account events are written with the account's new status, in one commit,
-- and turned into notifications afterwards by the rules' event feed:
-- an event waits for it while dispatched_at is NULL.
ALTER TABLE events ADD COLUMN dispatched_at BIGINT;
UPDATE events SET dispatched_at = created_at;
CREATE INDEX events_pending ON events (created_at) WHERE dispatched_at IS NULL;
