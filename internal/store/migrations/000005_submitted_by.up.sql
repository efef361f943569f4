-- 000005_submitted_by: who submitted each record (SPEC 8.3).
--
-- The writer fills submitted_by for every new event and notification: the
-- principal the API authenticated, when the API's signature on the Kafka
-- record verifies, else "kafka:" and the name the record claims, or
-- "kafka:unknown" (internal/provenance). 518 characters are "kafka:" and a
-- name of up to 512.
--
-- Nullable and without a default, for two reasons: rows stored before this
-- migration have no known submitter, and NULL says so where any value
-- would claim something; and ADD COLUMN without a default only changes the
-- catalog, so it is instant on a populated table of any size (on a
-- partitioned table, for every partition). No index: submitted_by is not a
-- query filter.
ALTER TABLE audit_events ADD COLUMN submitted_by varchar(518);
ALTER TABLE notification_audit ADD COLUMN submitted_by varchar(518);
