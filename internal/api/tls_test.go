package api_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/auditstream/auditstream/internal/auth"
)

// testCA is a certificate authority made for one test.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newTestCA(t *testing.T, name string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	cert, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	return &testCA{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// issue returns a PEM certificate and key for subject, serving 127.0.0.1
// (server) or authenticating a client.
func (ca *testCA) issue(t *testing.T, subject pkix.Name, serial int64, server bool) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial), Subject: subject,
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.IPAddresses = []net.IP{net.ParseIP("127.0.0.1")}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	require.NoError(t, err)
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	require.NoError(t, err)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder})
}

// tlsClient trusts ca and presents cert (if any) whatever CAs the server
// asks for, as a misconfigured or hostile client would.
func tlsClient(t *testing.T, ca *testCA, cert *tls.Certificate, minVersion, maxVersion uint16) *http.Client {
	t.Helper()
	pool := x509.NewCertPool()
	pool.AddCert(ca.cert)
	tc := &tls.Config{RootCAs: pool, MinVersion: minVersion, MaxVersion: maxVersion}
	if cert != nil {
		tc.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return cert, nil }
	}
	tr := &http.Transport{TLSClientConfig: tc}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

// clientCert is a client certificate of ca for subject.
func (ca *testCA) clientCert(t *testing.T, subject pkix.Name, serial int64) *tls.Certificate {
	t.Helper()
	certPEM, keyPEM := ca.issue(t, subject, serial, false)
	c, err := tls.X509KeyPair(certPEM, keyPEM)
	require.NoError(t, err)
	return &c
}

// TestMutualTLS: over HTTPS with client CAs, a verified client certificate
// is a principal mapped by the policy file; a certificate from another CA
// fails the handshake; bearer tokens still work without a certificate;
// TLS below 1.2 and plain HTTP are refused. Nothing refused reaches Kafka
// or PostgreSQL.
func TestMutualTLS(t *testing.T) {
	dir := t.TempDir()
	serverCA, clientCA, otherCA := newTestCA(t, "server CA"), newTestCA(t, "client CA"), newTestCA(t, "another CA")
	certPEM, keyPEM := serverCA.issue(t, pkix.Name{CommonName: "ingest-api"}, 2, true)
	certFile, keyFile := writeFile(t, dir, "tls.crt", certPEM), writeFile(t, dir, "tls.key", keyPEM)
	caFile := writeFile(t, dir, "client-ca.pem", clientCA.pem)
	policy := writeFile(t, dir, "policy.yaml", []byte(`rules:
  - certificate: "CN=billing-batch,O=Example"
    scopes: [audit:write]
`))
	tc, err := auth.ServerTLS(auth.TLSConfig{CertFile: certFile, KeyFile: keyFile, ClientCAFile: caFile, CheckInterval: time.Second}, zap.NewNop())
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

	mapped := clientCA.clientCert(t, pkix.Name{CommonName: "billing-batch", Organization: []string{"Example"}}, 3)
	unmapped := clientCA.clientCert(t, pkix.Name{CommonName: "someone-else"}, 4)
	foreign := otherCA.clientCert(t, pkix.Name{CommonName: "billing-batch", Organization: []string{"Example"}}, 5)

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
	dir := t.TempDir()
	ca := newTestCA(t, "server CA")
	c1, k1 := ca.issue(t, pkix.Name{CommonName: "ingest-api"}, 100, true)
	certFile, keyFile := writeFile(t, dir, "tls.crt", c1), writeFile(t, dir, "tls.key", k1)
	tc, err := auth.ServerTLS(auth.TLSConfig{CertFile: certFile, KeyFile: keyFile, CheckInterval: time.Millisecond}, zap.NewNop())
	require.NoError(t, err)
	f := newFixtureServing(t, tc)

	serial := func(client *http.Client) int64 {
		res, err := client.Get(f.url + "/health/live")
		require.NoError(t, err)
		_, _ = io.Copy(io.Discard, res.Body) // read to the end, so the connection is kept
		res.Body.Close()
		return res.TLS.PeerCertificates[0].SerialNumber.Int64()
	}
	kept := tlsClient(t, ca, nil, tls.VersionTLS12, 0)
	require.Equal(t, int64(100), serial(kept))

	// As a certificate manager renews: new files renamed into place.
	c2, k2 := ca.issue(t, pkix.Name{CommonName: "ingest-api"}, 101, true)
	for name, b := range map[string][]byte{certFile: c2, keyFile: k2} {
		require.NoError(t, os.WriteFile(name+".new", b, 0o600))
		require.NoError(t, os.Rename(name+".new", name))
	}
	testenvAwait(t, "the renewed certificate is served", func() (bool, string) {
		got := serial(tlsClient(t, ca, nil, tls.VersionTLS12, 0))
		return got == 101, fmt.Sprint("serial ", got)
	})
	require.Equal(t, int64(100), serial(kept), "the open connection was not dropped")
}
