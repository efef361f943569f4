package kafka

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/IBM/sarama"
	"github.com/xdg-go/scram"
)

// SASL mechanisms the clients speak (SPEC 8.5).
const (
	SASLPlain       = "PLAIN"
	SASLScramSHA256 = "SCRAM-SHA-256"
	SASLScramSHA512 = "SCRAM-SHA-512"
)

// saslMechanisms lists the accepted values of SASL.Mechanism.
var saslMechanisms = []string{SASLPlain, SASLScramSHA256, SASLScramSHA512}

// Secret is a string that never prints: fmt and encoders show a
// placeholder, so a configuration logged or dumped whole does not leak the
// password it carries.
type Secret string

const redacted = "[redacted]"

// String implements fmt.Stringer.
func (Secret) String() string { return redacted }

// GoString implements fmt.GoStringer, for %#v.
func (Secret) GoString() string { return redacted }

// MarshalText implements encoding.TextMarshaler, which JSON, YAML and
// zap's reflection encoder use.
func (Secret) MarshalText() ([]byte, error) { return []byte(redacted), nil }

// TLS is the client side of TLS to the brokers.
type TLS struct {
	Enabled bool
	// CAFile is a PEM bundle of the authorities that sign the brokers'
	// certificates; empty trusts the system's roots.
	CAFile string
	// CertFile and KeyFile are the client certificate, for brokers that
	// require mutual TLS; both or neither.
	CertFile, KeyFile string
	// ServerName is the name checked against the broker certificates when
	// it differs from the host in the broker address (a broker reached
	// through an IP or a tunnel).
	ServerName string
}

// SASL is the authentication to the brokers; an empty Mechanism means none.
type SASL struct {
	Mechanism string
	Username  string
	// Password, or PasswordFile naming a file that holds it (a mounted
	// Secret); the file is read when a client is configured.
	Password     Secret
	PasswordFile string
}

// applySecurity sets TLS and SASL on a client configuration. It reads the
// files it names now, so a wrong path fails at start-up with the path in
// the error, never the contents.
func applySecurity(sc *sarama.Config, c Config) error {
	if c.TLS.Enabled {
		tc, err := c.TLS.config()
		if err != nil {
			return err
		}
		sc.Net.TLS.Enable = true
		sc.Net.TLS.Config = tc
	}
	if c.SASL.Mechanism == "" {
		return nil
	}
	password, err := c.SASL.password()
	if err != nil {
		return err
	}
	sc.Net.SASL.Enable = true
	sc.Net.SASL.Handshake = true
	// SaslAuthenticate requests (KIP-152, Kafka 1.0+), so that a failed
	// authentication comes back as an error message instead of a closed
	// connection.
	sc.Net.SASL.Version = sarama.SASLHandshakeV1
	sc.Net.SASL.Mechanism = sarama.SASLMechanism(c.SASL.Mechanism)
	sc.Net.SASL.User = c.SASL.Username
	sc.Net.SASL.Password = password
	switch c.SASL.Mechanism {
	case SASLPlain:
	case SASLScramSHA256:
		sc.Net.SASL.SCRAMClientGeneratorFunc = func() sarama.SCRAMClient { return &scramClient{hash: scram.SHA256} }
	case SASLScramSHA512:
		sc.Net.SASL.SCRAMClientGeneratorFunc = func() sarama.SCRAMClient { return &scramClient{hash: scram.SHA512} }
	default:
		return fmt.Errorf("kafka: SASL mechanism %q is not one of %s", c.SASL.Mechanism, strings.Join(saslMechanisms, ", "))
	}
	return nil
}

// config builds the TLS configuration. The client certificate is read
// again for every new connection: certificates issued for hours or days
// (cert-manager, Vault) are renewed in place, and a long-running writer
// must present the renewed one when it reconnects, without a restart.
func (t TLS) config() (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: t.ServerName}
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("kafka TLS CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("kafka TLS CA file %s: no PEM certificate in it", t.CAFile)
		}
		tc.RootCAs = pool
	}
	if (t.CertFile == "") != (t.KeyFile == "") {
		return nil, errors.New("kafka TLS: a client certificate needs both its certificate and its key file")
	}
	if t.CertFile != "" {
		load := func() (*tls.Certificate, error) {
			cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
			if err != nil {
				return nil, fmt.Errorf("kafka TLS client certificate %s / %s: %w", t.CertFile, t.KeyFile, err)
			}
			return &cert, nil
		}
		if _, err := load(); err != nil {
			return nil, err
		}
		tc.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return load() }
	}
	return tc, nil
}

// password returns the password, from the file when one is named. One
// trailing line break is dropped: editors and `echo` add it, and no broker
// password ends with one.
func (s SASL) password() (string, error) {
	if s.PasswordFile == "" {
		return string(s.Password), nil
	}
	b, err := os.ReadFile(s.PasswordFile)
	if err != nil {
		// The os error names the path, never the contents.
		return "", fmt.Errorf("kafka SASL password file: %w", err)
	}
	p := strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r")
	if p == "" {
		return "", fmt.Errorf("kafka SASL password file %s is empty", s.PasswordFile)
	}
	return p, nil
}

// scramClient is sarama's SCRAM conversation (RFC 5802), done by xdg-go's
// implementation, as sarama's own examples do.
type scramClient struct {
	hash scram.HashGeneratorFcn
	conv *scram.ClientConversation
}

func (c *scramClient) Begin(user, password, authzID string) error {
	client, err := c.hash.NewClient(user, password, authzID)
	if err != nil {
		return fmt.Errorf("scram client: %w", err)
	}
	c.conv = client.NewConversation()
	return nil
}

func (c *scramClient) Step(challenge string) (string, error) { return c.conv.Step(challenge) }

func (c *scramClient) Done() bool { return c.conv.Done() }

// explain adds what an operator needs to a connection failure whose bare
// cause says little. A broker closes the connection without a word when a
// plaintext client reaches its TLS listener, and some (kfake, proxies)
// also when they refuse a SASL user; Apache Kafka answers the latter with
// an error of its own, which needs no hint.
func explain(err error, c Config) error {
	if err == nil || !errors.Is(err, io.EOF) {
		return err
	}
	switch {
	case !c.TLS.Enabled:
		return fmt.Errorf("%w (the broker closed the connection: if its listener expects TLS, set KAFKA_TLS_ENABLED=true)", err)
	case c.SASL.Mechanism != "":
		return fmt.Errorf("%w (the broker closed the connection: if it refused the SASL credentials, check KAFKA_SASL_MECHANISM, KAFKA_SASL_USERNAME and the password)", err)
	}
	return err
}
