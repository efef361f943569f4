ALTER TABLE audit_event_ids DROP COLUMN IF EXISTS content_sha256;
