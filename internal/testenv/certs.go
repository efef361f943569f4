package testenv

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// CA is a certificate authority made on the spot, for servers and clients
// that talk TLS in a test: nothing is shared with the machine's trust
// store, and nothing outlives the directory it writes to.
type CA struct {
	dir  string
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	file string
}

// KeyPair is a certificate issued by a CA, as PEM files and loaded.
type KeyPair struct {
	CertFile, KeyFile string
	TLS               tls.Certificate
}

// certLifetime is long enough for any test run, short enough that a file
// left behind is useless soon.
const certLifetime = 24 * time.Hour

// NewCA creates a CA whose certificate is written to dir (CertFile); the
// certificates it issues go to dir too.
func NewCA(dir, name string) (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("CA key: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Minute),
		NotAfter:              time.Now().Add(certLifetime),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("CA certificate: %w", err)
	}
	ca := &CA{dir: dir, cert: cert, key: key, file: filepath.Join(dir, name+".ca.pem")}
	if err := writePEM(ca.file, "CERTIFICATE", der, 0o644); err != nil {
		return nil, err
	}
	return ca, nil
}

// CertFile is the PEM file of the CA's certificate, what clients trust.
func (ca *CA) CertFile() string { return ca.file }

// Pool is a pool holding only the CA's certificate.
func (ca *CA) Pool() *x509.CertPool {
	pool := x509.NewCertPool()
	pool.AddCert(ca.cert)
	return pool
}

// Loopback are the names of a server on this machine: what a client
// dialling 127.0.0.1 or localhost checks.
var Loopback = []string{"127.0.0.1", "::1", "localhost"}

// IssueServer issues a server certificate for hosts (IP addresses or DNS
// names), written as name.pem and name.key.
func (ca *CA) IssueServer(name string, hosts ...string) (KeyPair, error) {
	tmpl := ca.leaf(name, x509.ExtKeyUsageServerAuth)
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	return ca.issue(name, tmpl)
}

// IssueClient issues a client certificate whose subject is commonName,
// written as commonName.pem and commonName.key.
func (ca *CA) IssueClient(commonName string) (KeyPair, error) {
	return ca.issue(commonName, ca.leaf(commonName, x509.ExtKeyUsageClientAuth))
}

func (ca *CA) leaf(commonName string, usage x509.ExtKeyUsage) *x509.Certificate {
	return &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: commonName},
		NotBefore:    time.Now().Add(-time.Minute),
		NotAfter:     time.Now().Add(certLifetime),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{usage},
	}
}

func (ca *CA) issue(name string, tmpl *x509.Certificate) (KeyPair, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return KeyPair{}, fmt.Errorf("key of %s: %w", name, err)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		return KeyPair{}, fmt.Errorf("certificate of %s: %w", name, err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return KeyPair{}, fmt.Errorf("key of %s: %w", name, err)
	}
	kp := KeyPair{CertFile: filepath.Join(ca.dir, name+".pem"), KeyFile: filepath.Join(ca.dir, name+".key")}
	if err := writePEM(kp.CertFile, "CERTIFICATE", der, 0o644); err != nil {
		return KeyPair{}, err
	}
	// PostgreSQL refuses a key file that others can read.
	if err := writePEM(kp.KeyFile, "PRIVATE KEY", keyDER, 0o600); err != nil {
		return KeyPair{}, err
	}
	if kp.TLS, err = tls.LoadX509KeyPair(kp.CertFile, kp.KeyFile); err != nil {
		return KeyPair{}, fmt.Errorf("load %s: %w", name, err)
	}
	return kp, nil
}

func writePEM(path, blockType string, der []byte, mode os.FileMode) error {
	data := pem.EncodeToMemory(&pem.Block{Type: blockType, Bytes: der})
	if err := os.WriteFile(path, data, mode); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127)) // crypto/rand never fails on Linux
	return n
}
