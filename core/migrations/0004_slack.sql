-- Slack delivers an event again when it saw no acknowledgement in 3 s (X-Slack-Retry-Num); the first delivery's
-- event id is claimed here, in the database, so no retry (nor a second server process) answers twice.
CREATE TABLE slack_events (
    event_id    text PRIMARY KEY,
    received_at timestamptz NOT NULL DEFAULT now()
);
