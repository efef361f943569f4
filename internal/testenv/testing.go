package testenv

import "context"

// TB is the part of testing.TB the helpers use. It is declared here rather
// than imported, as testify's TestingT is, so that devstack and auditbench,
// which start these services outside tests, do not link the testing
// package; *testing.T, *testing.B and testing.TB satisfy it.
type TB interface {
	Helper()
	Fatalf(format string, args ...any)
	Errorf(format string, args ...any)
	Cleanup(f func())
	Context() context.Context
}

// NewKafka starts a Kafka private to one test (see StartKafka) and closes it
// when the test ends. It is for tests that break the broker on purpose;
// others share the package's Kafka from TestMain. It fails the test, never
// skips it, when no broker can be had.
func NewKafka(t TB, topics map[string]int32) *Kafka {
	t.Helper()
	k, err := StartKafka(t.Context(), topics)
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

// NewOTLPReceiver starts a receiver that keeps every span (see
// StartOTLPReceiver) and stops it when the test ends.
func NewOTLPReceiver(t TB) *OTLPReceiver {
	r := StartOTLPReceiver(true)
	t.Cleanup(r.Close)
	return r
}
