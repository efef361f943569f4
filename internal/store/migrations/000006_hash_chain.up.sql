-- 000006_hash_chain: tamper evidence (SPEC 9.1, 9.2): the keyed hash chain
-- of each correlation_id, its heads, and the signed checkpoints.
--
-- The writer, inside each batch's transaction, gives every event it stores
-- the next chain_seq of its correlation_id's chain (storage order, never
-- event time), the previous event's hash and
-- event_hash = HMAC-SHA256(key, previous_event_hash || canonical(event))
-- (internal/integrity; the README defines canonical byte for byte). The
-- columns are nullable and without defaults: ADD COLUMN then only changes
-- the catalog, instant on a populated table and each of its partitions.
-- NULL means "stored without a chain": events from before this migration,
-- or written with INTEGRITY_DISABLED=true. previous_event_hash of the
-- first event of a chain is the empty bytea, not NULL.
ALTER TABLE audit_events
    ADD COLUMN chain_seq           bigint,
    ADD COLUMN previous_event_hash bytea,
    ADD COLUMN event_hash          bytea,
    ADD COLUMN hash_key_id         varchar(64),
    ADD COLUMN hash_version        smallint;

-- Verification reads a chain in chain_seq order. Partial: rows without a
-- chain cost nothing at COPY time. Not unique: a unique index on a
-- partitioned table must contain the partition key (event_timestamp), so it
-- could not say "one chain_seq per chain" anyway; chain_heads serialises
-- the writers, and the verifier reports a repeated chain_seq as a break.
-- Created on the partitioned parent (cloned to every partition), as the
-- other indexes are; on a large populated table an operator may build it
-- per partition CONCURRENTLY beforehand and attach the pieces.
CREATE INDEX audit_events_chain_idx ON audit_events (correlation_id, chain_seq) WHERE chain_seq IS NOT NULL;

-- ---------------------------------------------------------------------------
-- chain_heads: the last link of every chain. A writer locks the heads of
-- all correlation ids of a batch in one statement (inserting missing ones
-- first), in correlation_id order, computes the batch's hashes, copies the
-- rows and moves the heads in one UPDATE, all in the batch's transaction:
-- two writers that both hold a partition during a rebalance queue on the
-- head row instead of forking the chain.
--
-- COLLATE "C": locks are taken in this order, and Go sorts the batch's ids
-- the same way, bytewise, whatever the database's default collation.
--
-- checkpoint_id is the integrity_checkpoints row that last covered the
-- head, NULL while the head has moved since: a writer sets it NULL when it
-- moves the head, the checkpointer sets it when a checkpoint includes the
-- head as it then was. Both do so under the row lock, so "moved since the
-- previous checkpoint" is exact with any number of writers, unlike a
-- timestamp (a transaction that commits late would carry an earlier time
-- than a checkpoint taken meanwhile). pending_since is when the head first
-- moved after its last checkpoint (NULL once covered): the checkpointer
-- takes the oldest first, and its minimum is the checkpoint lag metric.
-- The partial index holds only the pending heads, a minute's worth.
-- ---------------------------------------------------------------------------
CREATE TABLE chain_heads (
    correlation_id varchar(255) COLLATE "C" PRIMARY KEY,
    chain_seq      bigint      NOT NULL CHECK (chain_seq >= 0),
    event_hash     bytea       NOT NULL,
    checkpoint_id  bigint,
    pending_since  timestamptz
);

CREATE INDEX chain_heads_pending_idx ON chain_heads (pending_since) WHERE checkpoint_id IS NULL;

COMMENT ON TABLE chain_heads IS
    'Head (last chain_seq and event_hash) of each correlation_id''s hash chain; '
    'locked FOR UPDATE by writers inside the batch transaction. checkpoint_id NULL: moved since the last checkpoint.';

-- ---------------------------------------------------------------------------
-- integrity_checkpoints: the signed checkpoints (SPEC 9.2), one sequence
-- for all writers: the writer that publishes one holds a transaction-level
-- advisory lock, so ids are consecutive and each checkpoint's
-- previous_hash is the hash of the one before. document is the checkpoint
-- exactly as published to the audit.checkpoints topic (self-describing
-- JSON with its Ed25519 signature; internal/integrity), hash the SHA-256
-- of its signed bytes. published_at is set once Kafka has acknowledged it:
-- a writer that crashed in between republishes the unpublished ones at its
-- next start (the topic is keyed by id, so a repeat is recognisable).
-- ---------------------------------------------------------------------------
CREATE TABLE integrity_checkpoints (
    id            bigint      PRIMARY KEY CHECK (id >= 1),
    created_at    timestamptz NOT NULL,
    heads         integer     NOT NULL,
    previous_hash bytea,
    hash          bytea       NOT NULL,
    document      bytea       NOT NULL,
    published_at  timestamptz
);

CREATE INDEX integrity_checkpoints_unpublished_idx ON integrity_checkpoints (id) WHERE published_at IS NULL;

COMMENT ON TABLE integrity_checkpoints IS
    'Signed checkpoints of the chain heads, one sequence; document is what audit.checkpoints carries.';
