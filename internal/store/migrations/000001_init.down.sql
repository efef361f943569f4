-- Reverses 000001_init. Drops every audit row: for development only.
DROP TABLE IF EXISTS notification_audit;
DROP SEQUENCE IF EXISTS notification_audit_id_seq;
DROP TABLE IF EXISTS audit_events; -- drops its partitions and triggers
DROP FUNCTION IF EXISTS audit_events_ensure_partition(timestamptz);
DROP FUNCTION IF EXISTS audit_events_append_only();
DROP TABLE IF EXISTS audit_event_ids;
