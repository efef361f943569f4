-- resource_type and resource_id are each a query filter on their own
-- (SPEC 2.5), always in newest-first order. The composite index of 000001,
-- (resource_id, resource_type, time), gives that order only when both are
-- fixed, so a filter on resource_id alone walked the whole time index.
-- One index per column serves each alone and, with the other as a filter
-- on few rows, both together. Partial, like the other indexes on nullable
-- columns, so rows without a resource cost nothing at COPY time.
DROP INDEX audit_events_resource_idx;
CREATE INDEX audit_events_resource_id_idx ON audit_events (resource_id, event_timestamp DESC, event_id DESC)
    WHERE resource_id IS NOT NULL;
CREATE INDEX audit_events_resource_type_idx ON audit_events (resource_type, event_timestamp DESC, event_id DESC)
    WHERE resource_type IS NOT NULL;
