package kafka

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/auditstream/auditstream/internal/testenv"
)

// secureConfig is the client configuration of a broker of
// testenv.NewSecureKafka, as internal/config builds it.
func secureConfig(k *testenv.Kafka) Config {
	c := k.Credentials()
	return Config{
		Brokers: k.Brokers(), Version: "3.6.0", ClientID: "t", PublishTimeout: 5 * time.Second,
		TLS:  TLS{Enabled: true, CAFile: c.CAFile, CertFile: c.Client.CertFile, KeyFile: c.Client.KeyFile},
		SASL: SASL{Mechanism: c.Mechanism, Username: c.Username, Password: Secret(c.Password)},
	}
}

// TestSecureBroker: every client (producer, consumer group member, reader)
// connects to a broker that requires TLS and SASL, with each mechanism,
// with and without a client certificate, the password given directly or
// in a file.
func TestSecureBroker(t *testing.T) {
	tests := []struct {
		mechanism    string
		mutualTLS    bool
		passwordFile bool
	}{
		{SASLPlain, false, false},
		{SASLScramSHA256, true, false},
		{SASLScramSHA512, true, true},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s mTLS=%v", tt.mechanism, tt.mutualTLS), func(t *testing.T) {
			k := testenv.NewSecureKafka(t, map[string]int32{"secure": 1}, tt.mechanism, tt.mutualTLS)
			cfg := secureConfig(k)
			if tt.passwordFile {
				cfg.SASL.PasswordFile = filepath.Join(t.TempDir(), "password")
				require.NoError(t, os.WriteFile(cfg.SASL.PasswordFile, []byte(string(cfg.SASL.Password)+"\n"), 0o600))
				cfg.SASL.Password = ""
			}

			p, err := NewProducer(cfg, nil, zap.NewNop(), prometheus.NewRegistry())
			require.NoError(t, err)
			require.NoError(t, p.ConnectOnce())
			t.Cleanup(func() { _ = p.Close() })
			require.NoError(t, p.Publish(t.Context(), []Record{{Topic: "secure", Key: []byte("k"), Value: []byte("over TLS")}}))

			r, err := NewReader(cfg, "secure-reader")
			require.NoError(t, err)
			defer r.Close()
			msg, err := r.Get(t.Context(), "secure", 0, 0)
			require.NoError(t, err)
			require.Equal(t, "over TLS", string(msg.Value))

			c, err := NewConsumer(cfg, "secure-group", Membership{})
			require.NoError(t, err)
			g, err := c.Join()
			require.NoError(t, err)
			require.NoError(t, g.Close())
		})
	}
}

// TestSecureBrokerRefusals: a client that does not present what the broker
// requires fails at connection with an error that says why, and neither
// the error nor the logs carry the password.
func TestSecureBrokerRefusals(t *testing.T) {
	k := testenv.NewSecureKafka(t, map[string]int32{"secure": 1}, SASLScramSHA512, true)
	other := testenv.NewSecureKafka(t, nil, SASLScramSHA512, true)
	good := secureConfig(k)

	tests := []struct {
		name string
		cfg  func(c Config) Config
		want string
	}{
		{"wrong password", func(c Config) Config { c.SASL.Password = "wrong-Pa55word"; return c }, "if it refused the SASL credentials"},
		{"unknown user", func(c Config) Config { c.SASL.Username = "nobody"; return c }, "if it refused the SASL credentials"},
		{"plaintext client", func(c Config) Config { c.TLS, c.SASL = TLS{}, SASL{}; return c }, "set KAFKA_TLS_ENABLED=true"},
		{"untrusted broker certificate", func(c Config) Config { c.TLS.CAFile = other.Credentials().CAFile; return c },
			"certificate signed by unknown authority"},
		{"no client certificate", func(c Config) Config { c.TLS.CertFile, c.TLS.KeyFile = "", ""; return c }, "tls: certificate required"},
		{"wrong mechanism", func(c Config) Config { c.SASL.Mechanism = SASLPlain; return c }, "if it refused the SASL credentials"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := tt.cfg(good)
			core, logs := observer.New(zap.DebugLevel)
			p, err := NewProducer(cfg, nil, zap.New(core), prometheus.NewRegistry())
			require.NoError(t, err)
			t.Cleanup(func() { _ = p.Close() })
			start := time.Now()
			err = p.ConnectOnce()
			require.Error(t, err)
			require.Less(t, time.Since(start), 15*time.Second, "a refusal is an error within seconds, not a hang")
			t.Logf("error: %v", err)
			require.ErrorContains(t, err, tt.want)
			secrets := []string{string(good.SASL.Password)}
			if cfg.SASL.Password != "" {
				secrets = append(secrets, string(cfg.SASL.Password))
			}
			for _, s := range secrets {
				require.NotContains(t, err.Error(), s)
			}

			// Connect logs each failed attempt; none names the password.
			ctx, cancel := context.WithTimeout(t.Context(), 500*time.Millisecond)
			defer cancel()
			require.True(t, errors.Is(p.Connect(ctx), context.DeadlineExceeded))
			require.NotZero(t, logs.Len())
			for _, e := range logs.All() {
				line := fmt.Sprintf("%s %v", e.Message, e.ContextMap())
				for _, s := range secrets {
					require.NotContains(t, line, s)
				}
			}
		})
	}
}

// TestSecurityConfigFiles: files that cannot be used fail when the client
// is configured, naming the file, never its contents.
func TestSecurityConfigFiles(t *testing.T) {
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage.pem")
	require.NoError(t, os.WriteFile(garbage, []byte("not a certificate"), 0o600))
	secret := filepath.Join(dir, "empty")
	require.NoError(t, os.WriteFile(secret, []byte("\n"), 0o600))
	base := Config{Brokers: []string{"127.0.0.1:1"}, Version: "3.6.0", ClientID: "t", PublishTimeout: time.Second}
	tests := []struct {
		name string
		tls  TLS
		sasl SASL
		want string
	}{
		{"missing CA", TLS{Enabled: true, CAFile: filepath.Join(dir, "nope.pem")}, SASL{}, "nope.pem: no such file"},
		{"CA without certificates", TLS{Enabled: true, CAFile: garbage}, SASL{}, "garbage.pem: no PEM certificate"},
		{"broken client certificate", TLS{Enabled: true, CertFile: garbage, KeyFile: garbage}, SASL{}, "client certificate"},
		{"half a client certificate", TLS{Enabled: true, CertFile: garbage}, SASL{}, "both its certificate and its key"},
		{"missing password file", TLS{}, SASL{Mechanism: SASLPlain, Username: "u", PasswordFile: filepath.Join(dir, "pw")}, "pw: no such file"},
		{"empty password file", TLS{}, SASL{Mechanism: SASLPlain, Username: "u", PasswordFile: secret}, "is empty"},
		{"unknown mechanism", TLS{}, SASL{Mechanism: "GSSAPI", Username: "u", Password: "p"}, "not one of PLAIN"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := base
			cfg.TLS, cfg.SASL = tt.tls, tt.sasl
			_, err := NewProducer(cfg, nil, zap.NewNop(), prometheus.NewRegistry())
			require.ErrorContains(t, err, tt.want)
			_, err = NewConsumer(cfg, "g", Membership{})
			require.ErrorContains(t, err, tt.want, "every client is configured in one place")
		})
	}
}
