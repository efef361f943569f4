ALTER TABLE chain_heads DROP COLUMN IF EXISTS last_checkpoint_id;
