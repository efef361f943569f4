-- 000009_chain_heads_fillfactor: every batch moves the heads of its chains
-- with one UPDATE; with half of each page left free, the new row version
-- mostly fits on the page of the old one (a HOT update: no new index
-- entries), which measured a quarter cheaper for PostgreSQL than full
-- pages (bench/README.md). The table holds one short row per chain, so
-- the space is cheap. Existing pages keep their fill until rewritten;
-- no rewrite is needed, and the lock is brief.
ALTER TABLE chain_heads SET (fillfactor = 50);
