package store

import (
	"slices"
	"sync"

	"github.com/auditstream/auditstream/internal/integrity"
)

// headCacheSize bounds the chain heads a Store remembers: about 150 bytes
// each, so a few MiB. A writer moves the chains of its own partitions, and
// a correlation_id's events mostly arrive close together, so the recent
// heads are the ones the next batches need.
const headCacheSize = 32768

// headCache remembers the chain heads this process committed, so that a
// batch reads from chain_heads only the chains it has not moved lately. A
// remembered head may be stale (another writer moved the chain while it
// held the partition during a rebalance): moving it then fails its
// chain_seq check (errChainRace), the batch's heads are forgotten and the
// batch is linked again to the heads as stored. The cache saves a query,
// never decides a link on its own.
//
// Two generations approximate least-recently-used: entries go into cur,
// and when cur is full the older generation is dropped and cur becomes
// it; a head found in the older one moves back into cur.
type headCache struct {
	mu       sync.Mutex
	cur, old map[string]integrity.Head
}

func newHeadCache() *headCache {
	return &headCache{cur: make(map[string]integrity.Head)}
}

// lookup puts the remembered heads of ids into heads and returns the ids
// it does not remember.
func (c *headCache) lookup(ids []string, heads map[string]integrity.Head) (missing []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, id := range ids {
		if h, ok := c.cur[id]; ok {
			heads[id] = h
			continue
		}
		if h, ok := c.old[id]; ok {
			heads[id] = h
			c.putLocked(id, h)
			continue
		}
		missing = append(missing, id)
	}
	return missing
}

// remember records committed heads. It keeps copies of their hashes: a
// linked event's hash lies in a slab shared with hundreds of others
// (integrity.Linker), which a remembered head that stops moving would
// keep alive for as long as it stays here.
func (c *headCache) remember(h *heads) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, id := range h.ids {
		c.putLocked(id, integrity.Head{Seq: h.seqs[i], Hash: slices.Clone(h.hashes[i])})
	}
}

// forget drops ids, whose heads may no longer be as remembered.
func (c *headCache) forget(ids []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, id := range ids {
		delete(c.cur, id)
		delete(c.old, id)
	}
}

func (c *headCache) putLocked(id string, h integrity.Head) {
	if len(c.cur) >= headCacheSize/2 {
		c.old, c.cur = c.cur, make(map[string]integrity.Head, headCacheSize/2)
	}
	c.cur[id] = h
}
