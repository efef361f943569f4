package api_test

import (
	"crypto/tls"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/auditstream/auditstream/internal/auth"
	"github.com/auditstream/auditstream/internal/testenv"
)

func newCA(t *testing.T, name string) *testenv.CA {
	t.Helper()
	ca, err := testenv.NewCA(t.TempDir(), name)
	require.NoError(t, err)
	return ca
}

func serverCert(t *testing.T, ca *testenv.CA, name string) testenv.KeyPair {
	t.Helper()
	kp, err := ca.IssueServer(name, testenv.Loopback...)
	require.NoError(t, err)
	return kp
}

func clientCert(t *testing.T, ca *testenv.CA, commonName string) *tls.Certificate {
	t.Helper()
	kp, err := ca.IssueClient(commonName)
	require.NoError(t, err)
	return &kp.TLS
}

// tlsClient trusts ca and presents cert (if any) whatever CAs the server
// asks for, as a misconfigured or hostile client would.
func tlsClient(t *testing.T, ca *testenv.CA, cert *tls.Certificate, minVersion, maxVersion uint16) *http.Client {
	t.Helper()
	tc := &tls.Config{RootCAs: ca.Pool(), MinVersion: minVersion, MaxVersion: maxVersion}
	if cert != nil {
		tc.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return cert, nil }
	}
	tr := &http.Transport{TLSClientConfig: tc}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

// TestMutualTLS: over HTTPS with client CAs, a verified client certificate
// is a principal mapped by the policy file; a certificate from another CA
// fails the handshake; bearer tokens still work without a certificate;
// TLS below 1.2 and plain HTTP are refused. Nothing refused reaches Kafka
// or PostgreSQL.
func TestMutualTLS(t *testing.T) {
	dir := t.TempDir()
	serverCA, clientCA, otherCA := newCA(t, "server"), newCA(t, "client"), newCA(t, "another")
	server := serverCert(t, serverCA, "ingest-api")
	policy := writeFile(t, dir, "policy.yaml", []byte(`rules:
  - certificate: "CN=billing-batch"
    scopes: [audit:write]
`))
	tc, err := auth.ServerTLS(auth.TLSConfig{CertFile: server.CertFile, KeyFile: server.KeyFile, ClientCAFile: clientCA.CertFile(),
		CheckInterval: time.Second}, zap.NewNop())
	require.NoError(t, err)

	s := &spies{}
	tokens := filepath.Join(dir, "tokens.yaml")
	writeTokens(t, tokens, auth.TokenEntry{Name: "fixture", SHA256: auth.TokenSHA256(fullAccessToken), Scopes: auth.AllScopes})
	f := newFixtureServing(t, tc, withSpies(s), withAuth(auth.Config{
		TokensFile: tokens, PolicyFile: policy, ClientCertificates: true, FileCheckInterval: time.Second,
	}))
	post := func(client *http.Client, header http.Header) (response, error) {
		return f.trySend(client, f.request(http.MethodPost, "/api/v1/audit/events", mustJSON(t, validEvent()), header))
	}

	mapped := clientCert(t, clientCA, "billing-batch")
	unmapped := clientCert(t, clientCA, "someone-else")
	foreign := clientCert(t, otherCA, "billing-batch")

	before := s.published.Load()
	_, err = post(tlsClient(t, serverCA, foreign, tls.VersionTLS12, 0), http.Header{})
	require.Error(t, err, "a certificate from another CA fails the handshake")
	_, err = post(tlsClient(t, serverCA, nil, tls.VersionTLS10, tls.VersionTLS11), bearer(fullAccessToken))
	require.Error(t, err, "TLS 1.1 is refused")
	plain, err := http.Post("http://"+f.url[len("https://"):]+"/api/v1/audit/events", "application/json", nil)
	require.NoError(t, err)
	plain.Body.Close()
	require.Equal(t, http.StatusBadRequest, plain.StatusCode, "plain HTTP on the HTTPS port is answered by Go's TLS server, never by the API")

	res, err := post(tlsClient(t, serverCA, unmapped, tls.VersionTLS12, 0), http.Header{})
	require.NoError(t, err)
	requireProblem(t, res, http.StatusForbidden, "forbidden")
	res, err = post(tlsClient(t, serverCA, nil, tls.VersionTLS12, 0), http.Header{})
	require.NoError(t, err)
	requireProblem(t, res, http.StatusUnauthorized, "unauthenticated")
	require.Equal(t, before, s.published.Load(), "nothing refused was published")

	res, err = post(tlsClient(t, serverCA, mapped, tls.VersionTLS12, 0), http.Header{})
	require.NoError(t, err)
	require.Equal(t, http.StatusCreated, res.status, "%s", res.body)
	res, err = post(tlsClient(t, serverCA, nil, tls.VersionTLS12, 0), bearer(fullAccessToken))
	require.NoError(t, err)
	require.Equal(t, http.StatusCreated, res.status, "a bearer token needs no certificate")
}

// TestCertificateReload: a renewed certificate written over the files is
// served to new connections without a restart, while an open connection
// keeps working.
func TestCertificateReload(t *testing.T) {
	ca := newCA(t, "server")
	first := serverCert(t, ca, "ingest-api")
	tc, err := auth.ServerTLS(auth.TLSConfig{CertFile: first.CertFile, KeyFile: first.KeyFile, CheckInterval: time.Millisecond}, zap.NewNop())
	require.NoError(t, err)
	f := newFixtureServing(t, tc)

	serial := func(client *http.Client) string {
		res, err := client.Get(f.url + "/health/live")
		require.NoError(t, err)
		_, _ = io.Copy(io.Discard, res.Body) // read to the end, so the connection is kept
		res.Body.Close()
		return res.TLS.PeerCertificates[0].SerialNumber.String()
	}
	kept := tlsClient(t, ca, nil, tls.VersionTLS12, 0)
	require.Equal(t, first.TLS.Leaf.SerialNumber.String(), serial(kept))

	// As a certificate manager renews: new files renamed into place.
	renewed := serverCert(t, ca, "renewed")
	require.NoError(t, os.Rename(renewed.CertFile, first.CertFile))
	require.NoError(t, os.Rename(renewed.KeyFile, first.KeyFile))
	want := renewed.TLS.Leaf.SerialNumber.String()
	testenvAwait(t, "the renewed certificate is served", func() (bool, string) {
		got := serial(tlsClient(t, ca, nil, tls.VersionTLS12, 0))
		return got == want, "serial " + got
	})
	require.Equal(t, first.TLS.Leaf.SerialNumber.String(), serial(kept), "the open connection was not dropped")
}
