-- Reverses 000006_hash_chain: drops the chain and its checkpoints.
DROP TABLE IF EXISTS integrity_checkpoints;
DROP TABLE IF EXISTS chain_heads;
DROP INDEX IF EXISTS audit_events_chain_idx;
ALTER TABLE audit_events
    DROP COLUMN IF EXISTS chain_seq,
    DROP COLUMN IF EXISTS previous_event_hash,
    DROP COLUMN IF EXISTS event_hash,
    DROP COLUMN IF EXISTS hash_key_id,
    DROP COLUMN IF EXISTS hash_version;
