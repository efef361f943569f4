DROP INDEX IF EXISTS audit_events_resource_type_idx;
DROP INDEX IF EXISTS audit_events_resource_id_idx;
CREATE INDEX audit_events_resource_idx ON audit_events (resource_id, resource_type, event_timestamp DESC, event_id DESC)
    WHERE resource_id IS NOT NULL;
