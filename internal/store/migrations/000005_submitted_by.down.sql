ALTER TABLE notification_audit DROP COLUMN IF EXISTS submitted_by;
ALTER TABLE audit_events DROP COLUMN IF EXISTS submitted_by;
