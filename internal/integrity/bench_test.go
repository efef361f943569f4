package integrity

import (
	"path/filepath"
	"testing"

	"github.com/auditstream/auditstream/internal/eventgen"
	"github.com/auditstream/auditstream/internal/keyring"
)

// BenchmarkLink is the writer's per-event cost of the chain in Go:
// canonical(event) and its HMAC, for the benchmark events of eventgen.
func BenchmarkLink(b *testing.B) {
	path := filepath.Join(b.TempDir(), "keys.yaml")
	if err := keyring.Generate(path, "bench"); err != nil {
		b.Fatal(err)
	}
	keys, err := LoadKeys(path)
	if err != nil {
		b.Fatal(err)
	}
	events := eventgen.Events(1000, eventgen.Options{Seed: 2, IDs: true})
	linker := keys.Linker()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, err := linker.Link(&events[i%len(events)], Head{Seq: 7, Hash: make([]byte, 32)}); err != nil {
			b.Fatal(err)
		}
		i++
	}
}
