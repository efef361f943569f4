-- 000003_content_digest: the content of each stored event, by digest, in the
-- event-id register.
--
-- audit_event_ids makes de-duplication exact on event_id, but on event_id
-- alone a record that reuses a stored id with different content (a
-- producer bug, a copied id) was skipped as a duplicate: dropped without a
-- trace. Writers now insert the SHA-256 of the event's canonical encoding
-- (audit.Event.ContentDigest, defined in the README) with its id and, for an
-- id that is already there, compare: the same digest is a redelivery
-- (counted, skipped), another one a conflict (dead-lettered, class
-- "conflict"; the stored row stays as it is).
--
-- Nullable, without a default or a CHECK (which would scan the table to
-- validate it): adding the column is a catalog change only, instant on a
-- populated table, and nothing is backfilled. Rows stored
-- before this migration keep NULL, and a record that repeats one of their
-- ids cannot be checked: the writer treats it as a duplicate and counts it
-- apart (auditstream_writer_unverified_duplicates_total).
ALTER TABLE audit_event_ids ADD COLUMN content_sha256 bytea;

COMMENT ON COLUMN audit_event_ids.content_sha256 IS
    'SHA-256 of the event''s canonical encoding (README: content digest); NULL for rows stored before migration 000003.';
