package auth

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"time"

	"go.uber.org/zap"
)

// TLSConfig configures HTTPS (SPEC 8.5).
type TLSConfig struct {
	CertFile, KeyFile string
	// ClientCAFile, when set, enables mutual TLS: a client certificate is
	// verified against these CAs and, when presented, is a credential.
	ClientCAFile string
	// CheckInterval is how often the certificate files are looked at for
	// a renewed certificate.
	CheckInterval time.Duration
}

// ServerTLS returns the server configuration: TLS 1.2 or later, the
// certificate re-read when its files change (a renewal takes effect on the
// next handshake; open connections keep theirs), and with a client CA a
// client certificate verified when given. It is "if given" rather than
// required so that bearer-token clients and probes without certificates
// still connect; a certificate that does not verify fails the handshake.
func ServerTLS(cfg TLSConfig, log *zap.Logger) (*tls.Config, error) {
	if cfg.CertFile == "" || cfg.KeyFile == "" {
		return nil, errors.New("tls: both the certificate and the key file are required")
	}
	if cfg.CheckInterval <= 0 {
		return nil, errors.New("tls: the check interval must be positive")
	}
	load := func() (*tls.Certificate, error) {
		c, err := tls.LoadX509KeyPair(cfg.CertFile, cfg.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("load TLS certificate: %w", err)
		}
		return &c, nil
	}
	cert, err := newReloading([]string{cfg.CertFile, cfg.KeyFile}, cfg.CheckInterval, load,
		func() { log.Info("TLS certificate reloaded", zap.String("path", cfg.CertFile)) },
		func(err error) {
			log.Error("TLS certificate not reloaded; the last good one stays in use", zap.String("path", cfg.CertFile), zap.Error(err))
		})
	if err != nil {
		return nil, err
	}
	tc := &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return cert.get(), nil
		},
	}
	if cfg.ClientCAFile != "" {
		pool, err := loadCAs(cfg.ClientCAFile)
		if err != nil {
			return nil, fmt.Errorf("client CA file: %w", err)
		}
		tc.ClientCAs = pool
		tc.ClientAuth = tls.VerifyClientCertIfGiven
	}
	return tc, nil
}

// loadCAs reads a PEM bundle of CA certificates.
func loadCAs(path string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s holds no PEM certificate", path)
	}
	return pool, nil
}
