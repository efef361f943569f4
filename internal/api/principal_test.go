package api_test

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/auditstream/auditstream/internal/api"
	"github.com/auditstream/auditstream/internal/auth"
	"github.com/auditstream/auditstream/internal/kafka"
	"github.com/auditstream/auditstream/internal/keyring"
	"github.com/auditstream/auditstream/internal/provenance"
)

// kafkaHeaders converts a consumed record's headers for provenance.
func kafkaHeaders(r *kgo.Record) []kafka.Header {
	hs := make([]kafka.Header, len(r.Headers))
	for i, h := range r.Headers {
		hs[i] = kafka.Header{Key: []byte(h.Key), Value: h.Value}
	}
	return hs
}

// TestRecordsCarryTheSignedPrincipal: every record of a request (single,
// batch, notification) names its authenticated caller (the name of its
// API key) in auditstream-principal, signed for that record's id and value
// so that the writer believes it; with access control disabled the caller
// is anonymous, and without keys the name goes unsigned.
func TestRecordsCarryTheSignedPrincipal(t *testing.T) {
	key, err := keyring.NewKey("source-1")
	require.NoError(t, err)
	ring, err := keyring.Parse(keyring.Marshal(key), "")
	require.NoError(t, err)
	keys := provenance.New(ring)

	tests := []struct {
		name     string
		disabled bool // AUTH_DISABLED
		signer   *provenance.Keys
		want     string // submitted_by the writer decides
	}{
		{"authenticated", false, keys, "fixture"},
		{"access control disabled", true, keys, "anonymous"},
		{"signing disabled", false, nil, "kafka:fixture"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, func(_ *api.Config, d *api.Deps) {
				if tt.disabled {
					d.Auth = auth.Disabled{}
				}
				if tt.signer != nil {
					d.Signer = tt.signer
				}
			})
			ev := validEvent()
			ev["submitted_by"] = "mallory" // stored, never taken from the body
			res := f.postJSON("/api/v1/audit/events", ev)
			require.Equal(t, http.StatusCreated, res.status, "%s", res.body)
			res = f.postJSON("/api/v1/audit/events/batch", []map[string]any{validEvent(), validEvent()})
			require.Equal(t, http.StatusCreated, res.status, "%s", res.body)
			res = f.postJSON("/api/v1/audit/notifications", validNotification("n-"+uuid.NewString()))
			require.Equal(t, http.StatusCreated, res.status, "%s", res.body)

			for _, rec := range f.consume(f.eventsTopic, 3) {
				var id struct {
					EventID string `json:"event_id"`
				}
				require.NoError(t, json.Unmarshal(rec.Value, &id))
				require.NotContains(t, string(rec.Value), "mallory")
				require.Equal(t, tt.want, keys.SubmittedBy(kafkaHeaders(rec), id.EventID, rec.Value))
				src, _ := header(rec, "auditstream-source")
				require.Equal(t, "ingest-api", src, "the API's own headers stay")
			}
			n := f.consume(f.notificationsTopic, 1)[0]
			require.Equal(t, tt.want, keys.SubmittedBy(kafkaHeaders(n), string(n.Key), n.Value),
				"a notification's signature covers its notification_id")
		})
	}
}
