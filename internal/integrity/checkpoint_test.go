package integrity_test

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/auditstream/auditstream/internal/integrity"
)

func testCheckpoint(id int64, prev []byte) integrity.Checkpoint {
	return integrity.Checkpoint{
		ID: id, Time: time.Date(2025, 12, 13, 2, 1, 0, 123456789, time.UTC), Writer: "writer-0", PreviousHash: prev,
		Heads: []integrity.CheckpointHead{
			{CorrelationID: "rr-2025-001", Head: integrity.Head{Seq: 3, Hash: bytes.Repeat([]byte{0xab}, 32)}},
			{CorrelationID: "rr-2025-002\n\"é", Head: integrity.Head{Seq: 100, Hash: bytes.Repeat([]byte{0x01}, 32)}},
		},
	}
}

func TestCheckpointRoundTrip(t *testing.T) {
	signer, err := integrity.ParseSigner([]byte(opensslPrivate))
	require.NoError(t, err)
	first, err := integrity.SignCheckpoint(signer, testCheckpoint(1, nil))
	require.NoError(t, err)
	second, err := integrity.SignCheckpoint(signer, testCheckpoint(2, first.Hash))
	require.NoError(t, err)

	// Self-describing.
	var doc map[string]any
	require.NoError(t, json.Unmarshal(second.Document, &doc))
	require.Equal(t, "auditstream.checkpoint", doc["format"])
	require.EqualValues(t, 1, doc["version"])
	require.Equal(t, "global", doc["sequence"])
	require.Equal(t, "2025-12-13T02:01:00.123456Z", doc["time"])
	require.Equal(t, integrity.KeyFingerprint(signer.PublicKey()), doc["public_key_sha256"])
	require.Len(t, doc["heads"], 2)

	pub, err := integrity.ParsePublicKey([]byte(opensslPublic))
	require.NoError(t, err)
	var prev *integrity.SignedCheckpoint
	for _, c := range []*integrity.SignedCheckpoint{first, second} {
		got, err := integrity.ParseCheckpoint(c.Document)
		require.NoError(t, err)
		require.NoError(t, got.Verify(pub))
		require.NoError(t, got.VerifyNext(prev))
		require.Equal(t, c.Hash, got.Hash, "the hash is of the signed bytes, whoever computes it")
		require.Equal(t, c.Checkpoint, got.Checkpoint)
		prev = got
	}
	require.ErrorIs(t, first.VerifyNext(second), integrity.ErrCheckpointSequence)
	require.ErrorIs(t, second.VerifyNext(nil), integrity.ErrCheckpointSequence)

	// The document may be re-encoded (reordered, spaced) and still verify:
	// what is signed is its canonical form.
	var members map[string]json.RawMessage
	require.NoError(t, json.Unmarshal(second.Document, &members))
	reencoded, err := json.MarshalIndent(members, "", "  ")
	require.NoError(t, err)
	got, err := integrity.ParseCheckpoint(reencoded)
	require.NoError(t, err)
	require.NoError(t, got.Verify(pub))
	require.Equal(t, second.Hash, got.Hash)
}

func TestCheckpointTampering(t *testing.T) {
	signer, err := integrity.ParseSigner([]byte(opensslPrivate))
	require.NoError(t, err)
	c, err := integrity.SignCheckpoint(signer, testCheckpoint(7, bytes.Repeat([]byte{9}, 32)))
	require.NoError(t, err)
	pub := signer.PublicKey()

	edits := map[string]func(doc string) string{
		"a head's chain_seq": func(d string) string { return strings.Replace(d, `"chain_seq":3`, `"chain_seq":2`, 1) },
		"a head's hash":      func(d string) string { return strings.Replace(d, "abab", "abac", 1) },
		"the previous hash":  func(d string) string { return strings.Replace(d, "0909", "0908", 1) },
		"the time":           func(d string) string { return strings.Replace(d, "02:01:00", "02:01:01", 1) },
		"a head removed": func(d string) string {
			i := strings.Index(d, `{"correlation_id":"rr-2025-002`)
			j := strings.Index(d[i:], "}") + i + 1
			return d[:i-1] + d[j:]
		},
		"a member added": func(d string) string { return strings.Replace(d, `{"format"`, `{"extra":1,"format"`, 1) },
	}
	for name, edit := range edits {
		t.Run(name, func(t *testing.T) {
			doc := edit(string(c.Document))
			require.NotEqual(t, string(c.Document), doc)
			got, err := integrity.ParseCheckpoint([]byte(doc))
			require.NoError(t, err)
			require.ErrorIs(t, got.Verify(pub), integrity.ErrCheckpointSignature)
		})
	}

	other := newSigner(t)
	forged, err := integrity.SignCheckpoint(other, testCheckpoint(7, nil))
	require.NoError(t, err)
	got, err := integrity.ParseCheckpoint(forged.Document)
	require.NoError(t, err)
	require.ErrorIs(t, got.Verify(pub), integrity.ErrCheckpointKey)

	for _, bad := range []string{`[]`, `{"format":"x","version":1}`, `{"format":"auditstream.checkpoint","version":2}`,
		`{"format":"auditstream.checkpoint","version":1,"sequence":"per-writer"}`,
		`{"format":"auditstream.checkpoint","version":1,"sequence":"global","signature":"AAAA"}`} {
		_, err := integrity.ParseCheckpoint([]byte(bad))
		require.Error(t, err, bad)
	}
}

func TestSplitHeads(t *testing.T) {
	signer := newSigner(t)
	long := strings.Repeat("\x01", 255) // the worst case: every character escaped
	var heads []integrity.CheckpointHead
	for i := range 5000 {
		heads = append(heads, integrity.CheckpointHead{CorrelationID: long + string(rune('a'+i%26)),
			Head: integrity.Head{Seq: int64(i) + 1<<40, Hash: bytes.Repeat([]byte{1}, 32)}})
	}
	runs := integrity.SplitHeads(heads)
	require.Greater(t, len(runs), 1)
	n := 0
	for _, run := range runs {
		n += len(run)
		c, err := integrity.SignCheckpoint(signer, integrity.Checkpoint{ID: 1, Time: time.Now(), Writer: strings.Repeat("w", 255), Heads: run})
		require.NoError(t, err)
		require.LessOrEqual(t, len(c.Document), integrity.MaxCheckpointBytes)
	}
	require.Equal(t, len(heads), n)
	require.Len(t, integrity.SplitHeads(heads[:3]), 1)
	require.Empty(t, integrity.SplitHeads(nil))

	// SignCheckpoints covers them all with checkpoints in a row.
	cps, err := integrity.SignCheckpoints(signer, "w", time.Now(), 41, bytes.Repeat([]byte{7}, 32), heads)
	require.NoError(t, err)
	require.Len(t, cps, len(runs))
	require.Equal(t, int64(42), cps[0].ID)
	require.Equal(t, bytes.Repeat([]byte{7}, 32), cps[0].PreviousHash)
	for i := 1; i < len(cps); i++ {
		require.NoError(t, cps[i].VerifyNext(cps[i-1]))
		require.NoError(t, cps[i].Verify(signer.PublicKey()))
	}
}

func newSigner(t *testing.T) *integrity.Signer {
	t.Helper()
	priv, _ := integrity.GenerateSigningKey()
	s, err := integrity.ParseSigner(priv)
	require.NoError(t, err)
	return s
}

// TestCheckpointWithKeySet: a checkpoint verifies with the key of the set
// it names, and names the set when it is signed by none of them; HeadOf
// finds a chain's head.
func TestCheckpointWithKeySet(t *testing.T) {
	signer, err := integrity.ParseSigner([]byte(opensslPrivate))
	require.NoError(t, err)
	c, err := integrity.SignCheckpoint(signer, testCheckpoint(1, nil))
	require.NoError(t, err)
	_, otherPub := integrity.GenerateSigningKey()
	both, err := integrity.ParsePublicKeys(append([]byte(opensslPublic), otherPub...))
	require.NoError(t, err)
	require.NoError(t, c.VerifyWith(both))
	other, err := integrity.ParsePublicKeys(otherPub)
	require.NoError(t, err)
	err = c.VerifyWith(other)
	require.ErrorIs(t, err, integrity.ErrCheckpointKey)
	require.ErrorContains(t, err, other.Fingerprints()[0])

	h, ok := c.HeadOf("rr-2025-002\n\"é")
	require.True(t, ok)
	require.Equal(t, int64(100), h.Seq)
	_, ok = c.HeadOf("rr-2025-000")
	require.False(t, ok)
}
