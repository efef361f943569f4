-- Reverses 000004_notification_reservations: ingest-api's duplicate check
-- then races again (only for going back to a release before it).
DROP FUNCTION IF EXISTS notification_reserve(text, bytea, timestamptz, interval);
DROP TABLE IF EXISTS notification_reservations;
