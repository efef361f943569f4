CREATE INDEX IF NOT EXISTS audit_events_chain_idx ON audit_events (correlation_id, chain_seq) WHERE chain_seq IS NOT NULL;
