package testenv

import (
	"context"
	"path/filepath"

	"github.com/auditstream/auditstream/internal/keyring"
)

// TB is the part of testing.TB the helpers use. It is declared here rather
// than imported, as testify's TestingT is, so that devstack and auditbench,
// which start these services outside tests, do not link the testing
// package; *testing.T, *testing.B and testing.TB satisfy it.
type TB interface {
	Helper()
	Fatalf(format string, args ...any)
	Errorf(format string, args ...any)
	Logf(format string, args ...any)
	Failed() bool
	Cleanup(f func())
	Context() context.Context
	TempDir() string
}

// NewKafka starts a Kafka private to one test (see StartKafka) and closes it
// when the test ends. It is for tests that break the broker on purpose;
// others share the package's Kafka from TestMain. It fails the test, never
// skips it, when no broker can be had.
func NewKafka(t TB, topics map[string]int32) *Kafka {
	t.Helper()
	k, err := StartKafka(t.Context(), topics)
	return ownKafka(t, k, err)
}

// NewRestartableKafka starts a broker private to one test that the test
// can stop and restart on the same address (see StartRestartableKafka),
// and closes it when the test ends.
func NewRestartableKafka(t TB, topics map[string]int32) *Kafka {
	t.Helper()
	k, err := StartRestartableKafka(topics, t.TempDir())
	return ownKafka(t, k, err)
}

// NewSecureKafka starts a broker private to one test that requires TLS and
// SASL (see StartSecureKafka), with its certificates in a directory of the
// test's, and closes it when the test ends.
func NewSecureKafka(t TB, topics map[string]int32, mechanism string, mutualTLS bool) *Kafka {
	t.Helper()
	k, err := StartSecureKafka(topics, SecureKafka{Dir: t.TempDir(), Mechanism: mechanism, MutualTLS: mutualTLS})
	return ownKafka(t, k, err)
}

// ownKafka fails the test on err, else closes k when the test ends.
func ownKafka(t TB, k *Kafka, err error) *Kafka {
	t.Helper()
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	t.Cleanup(func() { _ = k.Close() })
	return k
}

// NewPostgres starts a PostgreSQL private to one test (see StartPostgres)
// and closes it when the test ends. It fails the test, never skips it, when
// no server can be had.
func NewPostgres(t TB) *Postgres {
	t.Helper()
	p, err := StartPostgres(t.Context())
	return ownPostgres(t, p, err)
}

// NewTLSPostgres starts a PostgreSQL private to one test that takes TCP
// connections over TLS only (see StartTLSPostgres), with its certificates
// in a directory of the test's, and closes it when the test ends.
func NewTLSPostgres(t TB) *Postgres {
	t.Helper()
	p, err := StartTLSPostgres(t.Context(), t.TempDir())
	return ownPostgres(t, p, err)
}

// ownPostgres fails the test on err, else closes p when the test ends.
func ownPostgres(t TB, p *Postgres, err error) *Postgres {
	t.Helper()
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	t.Cleanup(func() {
		if err := p.Close(); err != nil {
			t.Errorf("testenv: close postgres: %v", err)
		}
	})
	return p
}

// NewAddr is FreeAddr for a test: it fails the test when no port is free.
func NewAddr(t TB) string {
	t.Helper()
	addr, err := FreeAddr()
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	return addr
}

// NewSourceKeys writes a source key file with one new key into a directory
// of the test's and returns its path, for a binary's SOURCE_KEYS_FILE.
func NewSourceKeys(t TB) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "source-keys.yaml")
	if err := keyring.Generate(path, "test"); err != nil {
		t.Fatalf("testenv: %v", err)
	}
	return path
}

// NewIntegrityKeys generates a writer's integrity keys into a directory
// of the test's (GenerateIntegrityKeys).
func NewIntegrityKeys(t TB) IntegrityKeys {
	t.Helper()
	k, err := GenerateIntegrityKeys(t.TempDir())
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	return k
}

// NewOTLPReceiver starts a receiver that keeps every span (see
// StartOTLPReceiver) and stops it when the test ends.
func NewOTLPReceiver(t TB) *OTLPReceiver {
	r := StartOTLPReceiver(true)
	t.Cleanup(r.Close)
	return r
}
