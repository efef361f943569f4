-- 000008_chain_anchor: which signed checkpoint last covered each chain, so
-- that verify-chain finds the anchor of one chain without reading every
-- checkpoint document (SPEC 9.3).
--
-- chain_heads.checkpoint_id is NULL while a head has moved since its last
-- checkpoint (the checkpointer's "pending" marker), so it forgets the
-- checkpoint that covered the chain before the move. last_checkpoint_id
-- keeps it: the checkpointer sets both, a writer moving the head clears
-- only checkpoint_id. The latest anchor is enough: a chain rewritten
-- before it changes the event_hash it recorded. Nullable without default,
-- so ADD COLUMN is instant; heads covered before this migration have
-- checkpoint_id set, which readers fall back to.
ALTER TABLE chain_heads ADD COLUMN last_checkpoint_id bigint;

COMMENT ON COLUMN chain_heads.last_checkpoint_id IS
    'integrity_checkpoints row that last covered this chain; kept when the head moves (unlike checkpoint_id).';
