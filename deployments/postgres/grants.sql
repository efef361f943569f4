-- Least-privilege grants for auditstream (README, "Database roles").
--
-- Three roles, created by the operator beforehand (names as below, or
-- replace them here):
--   auditstream_owner   owns the schema: runs the migrations
--                       (auditctl migrate), owns every table, partition and
--                       function. No binary runs as it.
--   auditstream_writer  the writer: inserts events and notifications,
--                       creates monthly partitions and applies retention
--                       through the owner's SECURITY DEFINER functions.
--   auditstream_api     ingest-api: reads events, checks and reserves
--                       notification ids, places and releases legal holds.
--
-- Run as auditstream_owner (or a superuser) in the auditstream database,
-- in the schema the migrations created, after `auditctl migrate`; run it
-- again after every upgrade (GRANT is idempotent, and a new table needs
-- its grant). Neither role may UPDATE or DELETE an audit row, nor run any
-- DDL: the append-only triggers refuse those to every role, owner
-- included, and these grants never give them.

DO $$
BEGIN
    EXECUTE format('GRANT USAGE ON SCHEMA %I TO auditstream_writer, auditstream_api', current_schema());
END;
$$;

-- The writer stores batches (COPY into audit_events; the id register
-- first; notifications through a temporary table, which needs the
-- database's TEMPORARY right, PUBLIC's by default).
GRANT SELECT, INSERT ON audit_events, audit_event_ids, notification_audit TO auditstream_writer;
GRANT USAGE ON SEQUENCE notification_audit_id_seq TO auditstream_writer;
-- Partitions and retention, as the owner (SECURITY DEFINER).
GRANT EXECUTE ON FUNCTION audit_events_ensure_partition(timestamptz) TO auditstream_writer;
GRANT EXECUTE ON FUNCTION audit_events_retention_drop(timestamptz, integer, uuid) TO auditstream_writer;
-- Drops whose audit event must be published again.
GRANT SELECT ON retention_drops TO auditstream_writer;
-- The hash chain (migration 000006): each chain's head, moved in the
-- batch's transaction, and the signed checkpoints of the heads.
GRANT SELECT, INSERT, UPDATE ON chain_heads, integrity_checkpoints TO auditstream_writer;

-- The API reads events (and the id register behind GET /events/{id}).
GRANT SELECT ON audit_events, audit_event_ids TO auditstream_api;
-- The notification check and the id it reserves, holding the
-- notification_id until the writer stores it (notification_reserve, an
-- ordinary function: it runs with these rights), and the pruning of old
-- holds.
GRANT SELECT ON notification_audit TO auditstream_api;
GRANT USAGE ON SEQUENCE notification_audit_id_seq TO auditstream_api;
GRANT SELECT, INSERT, UPDATE, DELETE ON notification_reservations TO auditstream_api;
GRANT EXECUTE ON FUNCTION notification_reserve(text, bytea, timestamptz, interval) TO auditstream_api;
-- Legal holds: placing inserts, releasing completes the entry (the
-- history trigger refuses any other change).
GRANT SELECT, INSERT ON legal_holds TO auditstream_api;
GRANT UPDATE (released_by, released_at, release_reason, events_released) ON legal_holds TO auditstream_api;
-- What retention removed from each chain, and the chain's heads and
-- checkpoints, for verification.
GRANT SELECT ON retention_drops, retention_dropped_chains, chain_heads, integrity_checkpoints TO auditstream_api;
