package writer_test

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/auditstream/auditstream/internal/audit"
	"github.com/auditstream/auditstream/internal/dlq"
	"github.com/auditstream/auditstream/internal/errclass"
	"github.com/auditstream/auditstream/internal/keyring"
	"github.com/auditstream/auditstream/internal/provenance"
)

// TestSystemCategory: an event of the reserved category auditstream is
// stored only from auditstream itself, its principal header signed with
// the source key; from anyone else, direct producers included, it is
// poison. With signing disabled a claim to be the system is stored as the
// unverified claim it is.
func TestSystemCategory(t *testing.T) {
	t.Parallel()
	key, err := keyring.NewKey("source-1")
	require.NoError(t, err)
	ring, err := keyring.Parse(keyring.Marshal(key), "")
	require.NoError(t, err)
	keys := provenance.New(ring)
	tp := newTopics(t)
	startWriter(t, tp, rigOptions{submitters: keys})
	unsignedTopics := newTopics(t)
	startWriter(t, unsignedTopics, rigOptions{})
	p := prefix(t)

	system := func(name string) audit.Event {
		e := fullEvent(p + name)
		e.EventCategory = audit.SystemCategory
		return e
	}
	signedAs := func(topic, principal string, e audit.Event) {
		rec := eventRecord(topic, e)
		rec.Headers = append(rec.Headers, kgoHeaders(keys.AppendHeaders(nil, principal, e.EventID.String(), rec.Value))...)
		produce(t, rec)
	}
	own, client, claimed, disabled := system("own"), system("client"), system("claimed"), system("disabled")
	signedAs(tp.events, audit.SystemPrincipal, own)
	signedAs(tp.events, "svc-gateway", client)
	claim := eventRecord(tp.events, claimed)
	claim.Headers = append(claim.Headers, kgoHeaders((*provenance.Keys)(nil).AppendHeaders(nil, audit.SystemPrincipal, "", nil))...)
	produce(t, claim)
	unsigned := eventRecord(unsignedTopics.events, disabled)
	unsigned.Headers = claim.Headers
	produce(t, unsigned)

	eventually(t, 20*time.Second, func() bool { return countEvents(t, p) == 2 }, "the system's own events stored")
	require.Equal(t, 1, count(t, `SELECT count(*) FROM audit_events WHERE event_id = $1 AND submitted_by = $2`,
		own.EventID, audit.SystemPrincipal))
	require.Equal(t, 1, count(t, `SELECT count(*) FROM audit_events WHERE event_id = $1 AND submitted_by = $2`,
		disabled.EventID, provenance.Unverified+audit.SystemPrincipal))

	dead := consumeAll(t, tp.dlq, 2)
	for _, d := range dead {
		require.Equal(t, string(errclass.Poison), header(d, dlq.HeaderErrorClass)[0])
		reason := header(d, dlq.HeaderError)[0]
		require.Contains(t, reason, "reserved for auditstream's own events")
		require.True(t, strings.Contains(reason, "kafka:system:auditstream") || strings.Contains(reason, "svc-gateway"), reason)
	}
}
