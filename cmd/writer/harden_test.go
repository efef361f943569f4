package main

// Process tests of the hardening of issue 18: what the writer does with a
// row it cannot encode, a reused event_id, a broker reset, and a group it
// cannot join.

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/auditstream/auditstream/internal/store"
	"github.com/auditstream/auditstream/internal/testenv"
)

// TestUnencodableRowIsIsolated: a row that pgx refuses to encode (injected
// by the faultinject build) is found by splitting its batch and
// dead-lettered as poison with the encoder's reason; the rest of the batch
// is stored and the writer never takes it for a database outage.
func TestUnencodableRowIsIsolated(t *testing.T) {
	p := newPipeline(t)
	w := startWriterBin(t, shared.faultBin, p, "unencodable")
	w.awaitReady(30 * time.Second)

	recs := make([]*kgo.Record, 0, 10)
	for i := range 9 {
		recs = append(recs, eventRecord(p.tag, i, uuid.New()))
	}
	recs = append(recs, eventRecord(store.FaultUnencodable, 9, uuid.New()))
	produce(t, p.events, recs...)

	dead := deadLetters(t, p, 1)
	require.Equal(t, "poison", header(dead[0], "dlq-error-class"))
	require.Contains(t, header(dead[0], "dlq-error"), "cannot be encoded for column duration_ms")
	require.Contains(t, string(dead[0].Value), store.FaultUnencodable)
	awaitCaughtUp(t, p, 9)
	require.Zero(t, w.metric("auditstream_writer_outages_total"), "an unencodable row taken for a database outage")
}

// produce publishes recs to topic and waits for the acknowledgements.
func produce(t *testing.T, topic string, recs ...*kgo.Record) {
	t.Helper()
	for _, r := range recs {
		r.Topic = topic
	}
	require.NoError(t, shared.kcl.ProduceSync(t.Context(), recs...).FirstErr())
}

// deadLetters waits for n records in the pipeline's DLQ and returns them.
func deadLetters(t *testing.T, p pipeline, n int) []*kgo.Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), catchUpTimeout)
	defer cancel()
	recs, err := testenv.ConsumeAll(ctx, shared.kafka.Brokers(), p.dlq, n)
	require.NoError(t, err, "%d dead letters in %s", n, p.dlq)
	return recs
}

// header returns the value of the record's header key ("" if absent).
func header(r *kgo.Record, key string) string {
	for _, h := range r.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}
