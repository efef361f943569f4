ALTER TABLE chain_heads RESET (fillfactor);
