-- Reverses 000007_lifecycle. Drops the newer fields' values, the legal
-- holds and the retention records: for development only.
REVOKE ALL ON FUNCTION audit_events_ensure_partition(timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION audit_events_ensure_partition(timestamptz) TO PUBLIC;
ALTER FUNCTION audit_events_ensure_partition(timestamptz) RESET search_path;
ALTER FUNCTION audit_events_ensure_partition(timestamptz) SECURITY INVOKER;
DROP FUNCTION IF EXISTS audit_events_retention_drop(timestamptz, integer, uuid);
DROP TABLE IF EXISTS retention_dropped_chains;
DROP TABLE IF EXISTS retention_drops;
DROP TABLE IF EXISTS legal_holds;
DROP FUNCTION IF EXISTS legal_holds_history();
DROP TRIGGER IF EXISTS notification_audit_identity ON notification_audit;
DROP FUNCTION IF EXISTS notification_audit_identity_fixed();
DROP FUNCTION IF EXISTS auditstream_append_only();
ALTER TABLE notification_audit DROP CONSTRAINT notification_audit_channel_check;
ALTER TABLE notification_audit ADD CONSTRAINT notification_audit_channel_check
    CHECK (channel IN ('email', 'slack', 'pagerduty', 'webhook')) NOT VALID;
ALTER TABLE audit_events
    DROP COLUMN IF EXISTS retention_days,
    DROP COLUMN IF EXISTS is_sensitive,
    DROP COLUMN IF EXISTS error_message,
    DROP COLUMN IF EXISTS error_code,
    DROP COLUMN IF EXISTS cluster_id,
    DROP COLUMN IF EXISTS actor_ip;
