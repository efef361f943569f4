package provenance

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/auditstream/auditstream/internal/audit"
	"github.com/auditstream/auditstream/internal/kafka"
	"github.com/auditstream/auditstream/internal/keyring"
)

func ring(t *testing.T, ids ...string) *keyring.Ring {
	t.Helper()
	keys := make([]keyring.Key, len(ids))
	for i, id := range ids {
		k, err := keyring.NewKey(id)
		require.NoError(t, err)
		keys[i] = k
	}
	r, err := keyring.Parse(keyring.Marshal(keys...), "")
	require.NoError(t, err)
	return r
}

func header(k, v string) kafka.Header { return kafka.Header{Key: []byte(k), Value: []byte(v)} }

func TestSubmittedBy(t *testing.T) {
	const id, other = "0190f0a4-7c1d-7000-8000-000000000001", "0190f0a4-7c1d-7000-8000-000000000002"
	value := []byte(`{"event_id":"` + id + `"}`)
	keys := New(ring(t, "k1"))
	stranger := New(ring(t, "k1")) // same id, another secret
	signed := keys.AppendHeaders(nil, "alice", id, value)
	sig := string(signed[1].Value)

	tests := []struct {
		name    string
		headers []kafka.Header
		id      string
		value   []byte
		want    string
	}{
		{"signed by the API", signed, id, value, "alice"},
		{"among other headers", append([]kafka.Header{header("content-type", "application/json")}, signed...), id, value, "alice"},
		{"no header", nil, id, value, Unknown},
		{"no principal, a signature", signed[1:], id, value, Unknown},
		{"unsigned", signed[:1], id, value, "kafka:alice"},
		{"forged signature", []kafka.Header{signed[0], header(kafka.HeaderPrincipalSig, "k1:AAAA")}, id, value, "kafka:alice"},
		{"signed with another secret", stranger.AppendHeaders(nil, "alice", id, value), id, value, "kafka:alice"},
		{"unknown key id", []kafka.Header{signed[0], header(kafka.HeaderPrincipalSig, "k9"+sig[2:])}, id, value, "kafka:alice"},
		{"no key id", []kafka.Header{signed[0], header(kafka.HeaderPrincipalSig, sig[3:])}, id, value, "kafka:alice"},
		{"signature not base64", []kafka.Header{signed[0], header(kafka.HeaderPrincipalSig, "k1:***")}, id, value, "kafka:alice"},
		{"copied onto another id", signed, other, value, "kafka:alice"},
		{"copied onto another value", signed, id, []byte(`{"event_id":"` + id + `","x":1}`), "kafka:alice"},
		{"another name with alice's signature", []kafka.Header{header(kafka.HeaderPrincipal, "mallory"), signed[1]}, id, value, "kafka:mallory"},
		{"first principal counts", append(signed, header(kafka.HeaderPrincipal, "mallory")), id, value, "alice"},
		{"empty name", []kafka.Header{header(kafka.HeaderPrincipal, "")}, id, value, Unknown},
		{"not UTF-8", []kafka.Header{header(kafka.HeaderPrincipal, "al\xffice")}, id, value, Unknown},
		{"NUL", []kafka.Header{header(kafka.HeaderPrincipal, "al\x00ice")}, id, value, Unknown},
		{"longest name", []kafka.Header{header(kafka.HeaderPrincipal, strings.Repeat("é", MaxPrincipal))}, id, value, "kafka:" + strings.Repeat("é", MaxPrincipal)},
		{"too long", []kafka.Header{header(kafka.HeaderPrincipal, strings.Repeat("a", MaxPrincipal+1))}, id, value, Unknown},
		{"no id", keys.AppendHeaders(nil, "alice", "", value), "", value, "kafka:alice"},
		{"signed name that looks unverified", keys.AppendHeaders(nil, "kafka:alice", id, value), id, value, "kafka:kafka:alice"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := keys.SubmittedBy(tt.headers, tt.id, tt.value)
			require.Equal(t, tt.want, got)
			want := "unverified"
			switch {
			case got == Unknown:
				want = "unknown"
			case tt.want == "alice":
				want = "verified"
			}
			require.Equal(t, want, Result(got))
			require.LessOrEqual(t, len([]rune(got)), MaxSubmittedBy)
		})
	}
}

// TestRotation: the last key signs; records signed with an older key still
// verify while it is listed, and not once it is removed.
func TestRotation(t *testing.T) {
	const id = "0190f0a4-7c1d-7000-8000-000000000001"
	value := []byte("v")
	old := ring(t, "old")
	oldKey := old.Signing()
	newKey, err := keyring.NewKey("new")
	require.NoError(t, err)
	rotated, err := keyring.Parse(keyring.Marshal(oldKey, newKey), "")
	require.NoError(t, err)
	retired, err := keyring.Parse(keyring.Marshal(newKey), "")
	require.NoError(t, err)

	before := New(old).AppendHeaders(nil, "alice", id, value)
	after := New(rotated).AppendHeaders(nil, "alice", id, value)
	require.True(t, strings.HasPrefix(string(after[1].Value), "new:"), "the last key signs")
	require.Equal(t, "alice", New(rotated).SubmittedBy(before, id, value), "older keys verify")
	require.Equal(t, "alice", New(rotated).SubmittedBy(after, id, value))
	require.Equal(t, "kafka:alice", New(retired).SubmittedBy(before, id, value), "a removed key verifies nothing")
}

// TestDisabled: without keys the name travels unsigned, and nothing
// verifies, not even a record the API signed.
func TestDisabled(t *testing.T) {
	const id = "0190f0a4-7c1d-7000-8000-000000000001"
	var off *Keys
	hs := off.AppendHeaders(nil, "alice", id, []byte("v"))
	require.Equal(t, []kafka.Header{header(kafka.HeaderPrincipal, "alice")}, hs)
	signed := New(ring(t, "k")).AppendHeaders(nil, "alice", id, []byte("v"))
	require.Equal(t, "kafka:alice", off.SubmittedBy(signed, id, []byte("v")))
	require.Equal(t, Unknown, off.SubmittedBy(nil, id, []byte("v")))
	require.Nil(t, off.KeyIDs())

	k, err := Load("")
	require.NoError(t, err)
	require.Nil(t, k, "no file is signing disabled")
	_, err = Load("/nonexistent/keys.yaml")
	require.ErrorContains(t, err, "source keys")
}

// TestMaxSubmittedByIsTheColumn: the field table sizes the column for the
// longest value SubmittedBy returns.
func TestMaxSubmittedByIsTheColumn(t *testing.T) {
	for _, f := range audit.EventFields() {
		if f.Name == "submitted_by" {
			require.Equal(t, MaxSubmittedBy, f.MaxLen)
			return
		}
	}
	t.Fatal("the field table has no submitted_by")
}
