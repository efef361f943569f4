package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/auditstream/auditstream/internal/integrity"
	"github.com/auditstream/auditstream/internal/query"
	"github.com/auditstream/auditstream/internal/verify/verifytest"
)

// exportFiles writes exports of the env's database as the API does
// (query.Reader.Export into an integrity.ExportWriter), signed by signer,
// and returns the file's path.
func (e *verifyEnv) exportFile(t *testing.T, format string, signer *integrity.Signer, f query.Filter) string {
	t.Helper()
	r, err := query.NewReader(e.store.Pool(), query.Config{StatementTimeout: 5 * time.Second, CountCap: 1})
	require.NoError(t, err)
	var buf bytes.Buffer
	x := integrity.NewExportWriter(&buf, signer, e.keys, integrity.ExportInfo{Format: format, Time: time.Now(), ExportedBy: "auditor"})
	require.NoError(t, r.Export(t.Context(), f, x.Event))
	require.NoError(t, x.Close("", time.Now()))
	path := filepath.Join(t.TempDir(), "export."+format)
	require.NoError(t, os.WriteFile(path, buf.Bytes(), 0o600))
	return path
}

func writeTemp(t *testing.T, name string, data []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	require.NoError(t, os.WriteFile(path, data, 0o600))
	return path
}

// TestVerifyExport: an export verifies offline with the public key alone,
// and with the HMAC keys; a cut file, a flipped byte, another signing key
// and an event changed in the database before the export do not, and the
// problem is named.
func TestVerifyExport(t *testing.T) {
	e := newVerifyEnv(t)
	priv, pub := integrity.GenerateSigningKey()
	signer, err := integrity.ParseSigner(priv)
	require.NoError(t, err)
	pubFile := writeTemp(t, "export.pub.pem", pub)
	corr := e.chain(t)
	other := e.chain(t)
	all := query.Filter{}

	for _, format := range []string{integrity.ExportNDJSON, integrity.ExportJSON} {
		t.Run(format, func(t *testing.T) {
			path := e.exportFile(t, format, signer, all)
			code, out, stderr := run(t, "verify-export", path, "--public-key", pubFile)
			require.Equal(t, 0, code, "%s\n%s", out, stderr)
			require.Contains(t, out, "result: the export verifies")
			require.Contains(t, out, "10 event(s) in 2 chain(s)")
			require.Contains(t, out, "no HMAC keys given")

			code, out, stderr = run(t, "verify-export", path, "--public-key", pubFile, "--integrity-keys", e.files.KeysFile, "--json")
			require.Equal(t, 0, code, "%s\n%s", out, stderr)
			var report struct {
				OK    bool  `json:"ok"`
				Keyed bool  `json:"keyed"`
				Chain int64 `json:"chains"`
			}
			require.NoError(t, json.Unmarshal([]byte(out), &report))
			require.Equal(t, true, report.OK)
			require.True(t, report.Keyed)

			data := readFile(t, path)
			amount := bytes.Index(data, []byte(`"amount": 102`))
			require.Positive(t, amount)
			for name, tc := range map[string]struct {
				data []byte
				want string
			}{
				"truncated":     {data[:len(data)/2], "PROBLEM truncated"},
				"byte flipped":  {flip(data, amount+11), "PROBLEM digest"},
				"trailer cut":   {data[:bytes.LastIndex(data[:len(data)-1], []byte("\n"))+1], "PROBLEM truncated"},
				"another's key": {readFile(t, e.exportFile(t, format, otherSigner(t), all)), "PROBLEM key"},
			} {
				code, out, _ := run(t, "verify-export", writeTemp(t, "export", tc.data), "--public-key", pubFile)
				require.Equal(t, 1, code, "%s: %s", name, out)
				require.Contains(t, out, tc.want, name)
				require.Contains(t, out, "result: NOT VERIFIED", name)
			}
		})
	}

	// Changed in the database before the export: the export is what the
	// service signed, and both the service's signed check and the keyed
	// offline check name the event.
	require.NoError(t, verifytest.Tamperings()[0].Apply(t.Context(), e.store.Pool(), e.keys, corr))
	path := e.exportFile(t, integrity.ExportNDJSON, signer, query.Filter{Equal: map[string]string{"correlation_id": corr}})
	code, out, _ := run(t, "verify-export", path, "--public-key", pubFile)
	require.Equal(t, 1, code, out)
	require.Contains(t, out, "PROBLEM tampered: the service found 1 exported event(s) whose chain is broken; the first: "+corr+" chain_seq 3 (altered)")
	code, out, _ = run(t, "verify-export", path, "--public-key", pubFile, "--integrity-keys", e.files.KeysFile)
	require.Equal(t, 1, code, out)
	require.Contains(t, out, "BROKEN "+corr+" at chain_seq 3 (altered)")

	// From stdin, as piped from curl.
	cmd := exec.Command(bin, "verify-export", "-", "--public-key", pubFile)
	cmd.Stdin = bytes.NewReader(readFile(t, e.exportFile(t, integrity.ExportJSON, signer, query.Filter{Equal: map[string]string{"correlation_id": other}})))
	stdout, err := cmd.Output()
	require.NoError(t, err, "%s", stdout)
	require.Contains(t, string(stdout), "5 event(s) in 1 chain(s)")

	code, _, stderr := run(t, "verify-export", path)
	require.Equal(t, 2, code)
	require.Contains(t, stderr, "--public-key")
	code, out, _ = run(t, "verify-export", "--help")
	require.Equal(t, 0, code)
	require.True(t, strings.Contains(out, "Examples:") && strings.Contains(out, "EXPORT_PUBLIC_KEY_FILE"), out)
}

func flip(data []byte, at int) []byte {
	out := bytes.Clone(data)
	out[at] ^= 0x01
	return out
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	return b
}

func otherSigner(t *testing.T) *integrity.Signer {
	t.Helper()
	priv, _ := integrity.GenerateSigningKey()
	s, err := integrity.ParseSigner(priv)
	require.NoError(t, err)
	return s
}
