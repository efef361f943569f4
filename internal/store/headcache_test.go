package store

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/auditstream/auditstream/internal/integrity"
)

// TestHeadCacheKeepsItsOwnHashes: a remembered head holds a copy of its
// hash, not the slab the Linker cut it from.
func TestHeadCacheKeepsItsOwnHashes(t *testing.T) {
	c := newHeadCache()
	slab := []byte{1, 2, 3, 4, 5, 6}
	var h heads
	h.add("a", integrity.Head{Seq: 1, Hash: slab[0:3:3]}, 0)
	h.add("b", integrity.Head{Seq: 4, Hash: slab[3:6:6]}, 3)
	c.remember(&h)
	clear(slab)

	got := map[string]integrity.Head{}
	require.Equal(t, []string{"c"}, c.lookup([]string{"a", "b", "c"}, got))
	require.Equal(t, map[string]integrity.Head{"a": {Seq: 1, Hash: []byte{1, 2, 3}}, "b": {Seq: 4, Hash: []byte{4, 5, 6}}}, got)
}
