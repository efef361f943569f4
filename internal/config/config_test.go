package config

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/alecthomas/kong"
	"github.com/stretchr/testify/require"

	apipkg "github.com/auditstream/auditstream/internal/api"
	"github.com/auditstream/auditstream/internal/audit"
	"github.com/auditstream/auditstream/internal/kafka"
	"github.com/auditstream/auditstream/internal/lifecycle"
	"github.com/auditstream/auditstream/internal/store"
	"github.com/auditstream/auditstream/internal/writer"
)

func parse(t *testing.T, cfg any, args ...string) error {
	t.Helper()
	parser, err := kong.New(cfg, kong.Name("test"), Vars(), kong.Exit(func(int) { t.Fatal("kong exited") }))
	require.NoError(t, err)
	_, err = parser.Parse(args)
	return err
}

// TestEnvironmentTwins: every setting can come from its environment
// variable, and a flag wins over it.
func TestEnvironmentTwins(t *testing.T) {
	t.Setenv("KAFKA_BROKERS", "k1:9092,k2:9092")
	t.Setenv("DATABASE_URL", "postgres://db/audit")
	t.Setenv("HTTP_ADDR", ":9999")
	t.Setenv("MAX_FUTURE_SKEW", "1m")
	t.Setenv("EVENT_CATEGORIES", "gateway,billing")
	t.Setenv("BATCH_SIZE", "123")
	t.Setenv("AUTH_TOKENS_FILE", "/etc/auditstream/tokens.yaml")
	t.Setenv("TRUSTED_PROXIES", "10.0.0.0/8,192.0.2.7")
	t.Setenv("SOURCE_KEYS_FILE", "/run/secrets/source-keys.yaml")
	t.Setenv("INTEGRITY_KEYS_FILE", "/run/secrets/integrity-keys.yaml")
	t.Setenv("CHECKPOINT_SIGNING_KEY_FILE", "/run/secrets/checkpoint.pem")
	t.Setenv("CHECKPOINT_INTERVAL", "30s")

	var api IngestAPI
	require.NoError(t, parse(t, &api, "--http-addr", ":7777"))
	require.Equal(t, []string{"k1:9092", "k2:9092"}, api.Kafka.Brokers)
	require.Equal(t, "postgres://db/audit", api.Postgres.URL)
	require.Equal(t, ":7777", api.HTTPAddr, "the flag wins over HTTP_ADDR")
	require.Equal(t, time.Minute, api.Validation.MaxFutureSkew)
	require.Equal(t, []string{"gateway", "billing"}, api.Validation.EventCategories)
	require.Equal(t, 5*time.Second, api.ShutdownDelay, "default")
	require.Equal(t, "/etc/auditstream/tokens.yaml", api.Auth.TokensFile)
	require.Equal(t, []string{"10.0.0.0/8", "192.0.2.7"}, api.Auth.TrustedProxies)
	require.Equal(t, ":9090", api.MetricsAddr, "default")
	require.False(t, api.Spool.Enabled(), "no SPOOL_DIR, no spool")
	require.Equal(t, int64(1<<30), api.Spool.MaxBytes, "default")

	var w Writer
	require.NoError(t, parse(t, &w))
	require.Equal(t, 123, w.BatchSize)
	require.Equal(t, api.Validation, w.Validation, "the writer reads the API's validation settings")
	require.Equal(t, "/run/secrets/source-keys.yaml", api.Source.KeysFile)
	require.Equal(t, api.Source, w.Source, "the writer reads the API's source keys")
	require.Equal(t, Integrity{KeysFile: "/run/secrets/integrity-keys.yaml", CheckpointSigningKeyFile: "/run/secrets/checkpoint.pem",
		CheckpointInterval: 30 * time.Second, CheckpointsTopic: "audit.checkpoints"}, w.Integrity)

	var r Replayer
	require.NoError(t, parse(t, &r, "run"))
	require.Equal(t, 30*time.Second, r.Run.Interval)
	require.Equal(t, 5, r.Run.MaxAttempts)
}

func TestValidateReportsEverySetting(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want []string
	}{
		{"missing connections", nil, []string{"KAFKA_BROKERS", "DATABASE_URL"}},
		{"bad limits", []string{"--kafka-brokers", "k:1", "--database-url", "x", "--max-batch-size", "0",
			"--max-body-bytes", "10", "--query-count-cap", "0", "--query-max-offset", "0", "--shutdown-delay=-1s",
			"--notification-reservation-ttl", "1s"},
			[]string{"MAX_BATCH_SIZE", "MAX_BODY_BYTES", "QUERY_COUNT_CAP", "QUERY_MAX_OFFSET", "SHUTDOWN_DELAY", "NOTIFICATION_RESERVATION_TTL"}},
		{"bad rules", []string{"--kafka-brokers", "k:1", "--database-url", "x", "--max-future-skew=-1m"},
			[]string{"skew"}},
		{"write timeout shorter than the answers it must write", []string{"--kafka-brokers", "k:1", "--database-url", "x",
			"--http-write-timeout", "11s", "--query-max-page-bytes", "100"},
			[]string{"HTTP_WRITE_TIMEOUT (11s) must exceed PUBLISH_TIMEOUT + DUPLICATE_CHECK_TIMEOUT and QUERY_TIMEOUT (12s)", "QUERY_MAX_PAGE_BYTES"}},
		{"write timeout longer than the drain", []string{"--kafka-brokers", "k:1", "--database-url", "x",
			"--http-write-timeout", "30s", "--shutdown-timeout", "25s"},
			[]string{"HTTP_WRITE_TIMEOUT (30s) must not exceed SHUTDOWN_TIMEOUT (25s)"}},
		{"category longer than its column", []string{"--kafka-brokers", "k:1", "--database-url", "x",
			"--event-categories", "gateway," + strings.Repeat("c", 101)},
			[]string{"at most 100 characters"}},
		{"no credential source", []string{"--kafka-brokers", "k:1", "--database-url", "x"},
			[]string{"no credential source", "AUTH_DISABLED=true"}},
		{"disabled and a source", []string{"--kafka-brokers", "k:1", "--database-url", "x", "--auth-disabled", "--auth-tokens-file", "t"},
			[]string{"choose one"}},
		{"issuer without audience", []string{"--kafka-brokers", "k:1", "--database-url", "x",
			"--auth-oidc-issuer", "https://issuer"}, []string{"AUTH_OIDC_AUDIENCE is required"}},
		{"JWKS URL alone", []string{"--kafka-brokers", "k:1", "--database-url", "x", "--auth-tokens-file", "t",
			"--auth-jwks-url", "https://issuer/keys"}, []string{"need AUTH_OIDC_ISSUER"}},
		{"policy for nothing", []string{"--kafka-brokers", "k:1", "--database-url", "x", "--auth-tokens-file", "t",
			"--auth-policy-file", "p"}, []string{"AUTH_POLICY_FILE maps"}},
		{"burst below a batch", []string{"--kafka-brokers", "k:1", "--database-url", "x", "--auth-tokens-file", "t",
			"--rate-limit-burst", "10"}, []string{"RATE_LIMIT_BURST (10) must be at least MAX_BATCH_SIZE"}},
		{"bad proxies", []string{"--kafka-brokers", "k:1", "--database-url", "x", "--auth-tokens-file", "t",
			"--trusted-proxies", "10.0.0.0/8,proxy.local"}, []string{`"proxy.local" is neither`}},
		{"TLS halves and mTLS without TLS", []string{"--kafka-brokers", "k:1", "--database-url", "x",
			"--tls-cert-file", "c.pem", "--tls-client-ca-file", "ca.pem"}, []string{"go together"}},
		{"mTLS without HTTPS", []string{"--kafka-brokers", "k:1", "--database-url", "x", "--tls-client-ca-file", "ca.pem"},
			[]string{"mutual TLS is HTTPS"}},
		{"metrics on the API port", []string{"--kafka-brokers", "k:1", "--database-url", "x", "--auth-disabled",
			"--http-addr", ":8080", "--metrics-addr", ":8080"}, []string{"must not share"}},
		{"a spool too small", []string{"--kafka-brokers", "k:1", "--database-url", "x", "--auth-disabled",
			"--spool-dir", "/var/spool/auditstream", "--spool-max-bytes", "1000"}, []string{"SPOOL_MAX_BYTES"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var api IngestAPI
			err := parse(t, &api, tc.args...)
			require.Error(t, err)
			for _, w := range tc.want {
				require.ErrorContains(t, err, w)
			}
		})
	}

	var w Writer
	err := parse(t, &w, "--kafka-brokers", "k:1", "--database-url", "x", "--batch-size", "0", "--batch-age", "0s")
	require.ErrorContains(t, err, "BATCH_SIZE")
	require.ErrorContains(t, err, "BATCH_AGE")

	var r Replayer
	err = parse(t, &r, "--kafka-brokers", "k:1", "replay", "--older-than", "2h", "--newer-than", "1h")
	require.ErrorContains(t, err, "select nothing")
}

// TestKafkaSecurity: TLS and SASL settings reach the client configuration,
// and combinations that would do less than asked are refused.
func TestKafkaSecurity(t *testing.T) {
	base := []string{"--kafka-brokers", "k:1", "--database-url", "x"}
	t.Run("reaches the client", func(t *testing.T) {
		t.Setenv("KAFKA_TLS_ENABLED", "true")
		t.Setenv("KAFKA_TLS_CA_FILE", "/ca.pem")
		t.Setenv("KAFKA_TLS_CERT_FILE", "/c.pem")
		t.Setenv("KAFKA_TLS_KEY_FILE", "/k.pem")
		t.Setenv("KAFKA_TLS_SERVER_NAME", "kafka.internal")
		t.Setenv("KAFKA_SASL_MECHANISM", "SCRAM-SHA-512")
		t.Setenv("KAFKA_SASL_USERNAME", "writer")
		t.Setenv("KAFKA_SASL_PASSWORD_FILE", "/run/secrets/kafka")
		t.Setenv("SOURCE_SIGNING_DISABLED", "true")
		t.Setenv("AUTH_DISABLED", "true")
		var api IngestAPI
		var w Writer
		var r Replayer
		require.NoError(t, parse(t, &api, base...))
		require.NoError(t, parse(t, &w, append(base, "--integrity-disabled")...))
		require.NoError(t, parse(t, &r, "--kafka-brokers", "k:1", "list"))
		for _, k := range []Kafka{api.Kafka, w.Kafka, r.Kafka} {
			c := k.Client()
			require.Equal(t, kafka.TLS{Enabled: true, CAFile: "/ca.pem", CertFile: "/c.pem", KeyFile: "/k.pem", ServerName: "kafka.internal"}, c.TLS)
			require.Equal(t, kafka.SASL{Mechanism: "SCRAM-SHA-512", Username: "writer", PasswordFile: "/run/secrets/kafka"}, c.SASL)
		}
	})
	tests := []struct {
		name string
		args []string
		want []string
	}{
		{"TLS files without TLS", []string{"--kafka-tls-ca-file", "/ca.pem", "--kafka-tls-server-name", "k"},
			[]string{"KAFKA_TLS_CA_FILE is set but KAFKA_TLS_ENABLED", "KAFKA_TLS_SERVER_NAME is set"}},
		{"certificate without key", []string{"--kafka-tls", "--kafka-tls-cert-file", "/c.pem"},
			[]string{"KAFKA_TLS_CERT_FILE and KAFKA_TLS_KEY_FILE go together"}},
		{"mechanism without credentials", []string{"--kafka-sasl-mechanism", "PLAIN"},
			[]string{"needs KAFKA_SASL_USERNAME", "needs KAFKA_SASL_PASSWORD or KAFKA_SASL_PASSWORD_FILE"}},
		{"credentials without mechanism", []string{"--kafka-sasl-username", "u", "--kafka-sasl-password", "p"},
			[]string{"KAFKA_SASL_MECHANISM is empty"}},
		{"two passwords", []string{"--kafka-sasl-mechanism", "SCRAM-SHA-256", "--kafka-sasl-username", "u",
			"--kafka-sasl-password", "p", "--kafka-sasl-password-file", "/f"}, []string{"not both"}},
		{"unknown mechanism", []string{"--kafka-sasl-mechanism", "GSSAPI"}, []string{"must be one of"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var api IngestAPI
			err := parse(t, &api, append(base, tc.args...)...)
			require.Error(t, err)
			for _, w := range tc.want {
				require.ErrorContains(t, err, w)
			}
		})
	}
}

// TestSecretsNeverPrinted: the SASL password shows neither in --help nor
// when the configuration is printed or encoded whole.
func TestSecretsNeverPrinted(t *testing.T) {
	const password = "s3cr3t-Pa55word"
	t.Setenv("KAFKA_SASL_PASSWORD", password)
	var api IngestAPI
	var help strings.Builder
	parser, err := kong.New(&api, kong.Name("ingest-api"), Vars(), kong.Writers(&help, &help), kong.Exit(func(int) {}))
	require.NoError(t, err)
	_, _ = parser.Parse([]string{"--help"})
	require.Contains(t, help.String(), "KAFKA_SASL_PASSWORD")
	require.NotContains(t, help.String(), password)

	require.NoError(t, parse(t, &api, "--kafka-brokers", "k:1", "--database-url", "x", "--source-signing-disabled",
		"--auth-disabled", "--kafka-sasl-mechanism", "PLAIN", "--kafka-sasl-username", "u"))
	require.Equal(t, kafka.Secret(password), api.Kafka.SASLPassword, "the password is read")
	js, err := json.Marshal(api)
	require.NoError(t, err)
	for _, out := range []string{fmt.Sprintf("%v", api), fmt.Sprintf("%+v", api), fmt.Sprintf("%#v", api), string(js)} {
		require.NotContains(t, out, password)
		require.Contains(t, out, "[redacted]")
	}
}

// TestSourceKeysRequired: ingest-api and the writer start only with a
// source key file or with signing disabled explicitly, not both.
func TestSourceKeysRequired(t *testing.T) {
	t.Setenv("AUTH_DISABLED", "true") // ingest-api's other requirement; the writer ignores it
	base := []string{"--kafka-brokers", "k:1", "--database-url", "x"}
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"neither", nil, "SOURCE_KEYS_FILE is required"},
		{"both", []string{"--source-keys-file", "/k.yaml", "--source-signing-disabled"}, "contradict"},
		{"key file", []string{"--source-keys-file", "/k.yaml"}, ""},
		{"disabled", []string{"--source-signing-disabled"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var api IngestAPI
			var w Writer
			for _, cfg := range []any{&api, &w} {
				args := append(base, tt.args...)
				if cfg == &w {
					args = append(args, "--integrity-disabled")
				}
				err := parse(t, cfg, args...)
				if tt.want == "" {
					require.NoError(t, err)
				} else {
					require.ErrorContains(t, err, tt.want)
				}
			}
		})
	}
}

// TestIntegrityKeysRequired: the writer starts only with the chain's key
// file and the checkpoint signing key, or with integrity disabled
// explicitly, not both.
func TestIntegrityKeysRequired(t *testing.T) {
	base := []string{"--kafka-brokers", "k:1", "--database-url", "x", "--source-signing-disabled"}
	keys := []string{"--integrity-keys-file", "/k.yaml", "--checkpoint-signing-key-file", "/c.pem"}
	tests := []struct {
		name string
		args []string
		want []string
	}{
		{"neither", nil, []string{"INTEGRITY_KEYS_FILE is required", "CHECKPOINT_SIGNING_KEY_FILE is required"}},
		{"no signing key", keys[:2], []string{"CHECKPOINT_SIGNING_KEY_FILE is required"}},
		{"both", append(keys, "--integrity-disabled"), []string{"contradicts"}},
		{"short interval", append(keys, "--checkpoint-interval", "10ms"), []string{"CHECKPOINT_INTERVAL"}},
		{"keys", keys, nil},
		{"disabled", []string{"--integrity-disabled"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var w Writer
			err := parse(t, &w, append(base, tt.args...)...)
			if tt.want == nil {
				require.NoError(t, err)
				return
			}
			for _, want := range tt.want {
				require.ErrorContains(t, err, want)
			}
		})
	}
	spec := Integrity{CheckpointsTopic: "audit.checkpoints"}.CheckpointsTopicSpec(3)
	require.Equal(t, kafka.Topic{Name: "audit.checkpoints", Partitions: 1, ReplicationFactor: 3,
		Config: map[string]string{"retention.ms": "-1", "retention.bytes": "-1"}}, spec)
}

// TestDefaultsAreTheOwners: the settings default to the values of the
// packages that own them, so a change there reaches the binaries.
func TestDefaultsAreTheOwners(t *testing.T) {
	required := []string{"--kafka-brokers", "k:9092", "--database-url", "postgres://db/audit", "--source-signing-disabled"}
	var api IngestAPI
	require.NoError(t, parse(t, &api, append(required, "--auth-tokens-file", "tokens.yaml")...))
	require.Equal(t, audit.DefaultRules(), api.Validation.Rules())
	require.Equal(t, audit.DefaultMaxBatchSize, api.MaxBatchSize)
	require.Equal(t, store.DefaultMaxConns, api.Postgres.MaxConns)
	require.Equal(t, apipkg.DefaultMaxOffset, api.QueryMaxOffset)
	require.Equal(t, store.DefaultReservationTTL, api.NotificationReservationTTL)
	require.Equal(t, apipkg.DefaultMaxPageBytes, api.QueryMaxPageBytes)
	require.Equal(t, apipkg.DefaultWriteTimeout, api.HTTPWriteTimeout)
	require.Equal(t, apipkg.DefaultVerifyTimeout, api.Integrity.VerifyTimeout)
	require.Equal(t, apipkg.DefaultExportMaxDuration, api.Integrity.ExportMaxDuration)
	require.Equal(t, apipkg.DefaultMaxConcurrentExports, api.Integrity.MaxConcurrentExports)

	var w Writer
	require.NoError(t, parse(t, &w, append(required, "--integrity-disabled")...))
	require.Equal(t, audit.DefaultRules(), w.Validation.Rules())
	require.Equal(t, store.DefaultMaxConns, w.Postgres.MaxConns)
	require.Equal(t, writer.DefaultGroupStallTimeout, w.GroupStallTimeout)
	require.Equal(t, writer.DefaultGroupPollInterval, w.GroupPollInterval)
	require.Equal(t, writer.DefaultFlushLanes, w.FlushLanes)
	require.Equal(t, lifecycle.DefaultRetentionDays, w.RetentionDays)
	require.Equal(t, lifecycle.DefaultInterval, w.MaintenanceInterval)
}

func TestShortDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		5 * time.Minute:         "5m",
		90 * time.Second:        "1m30s",
		time.Hour:               "1h",
		time.Hour + time.Minute: "1h1m",
		2 * time.Second:         "2s",
		1500 * time.Millisecond: "1.5s",
	} {
		require.Equal(t, want, shortDuration(d), d.String())
	}
}

// TestWriterMemberName: the writer's static member name is
// WRITER_INSTANCE_ID, else POD_NAME, else the host name; a name Kafka
// refuses and an unusable session timeout are reported before start-up.
func TestWriterMemberName(t *testing.T) {
	host, err := os.Hostname()
	require.NoError(t, err)
	base := []string{"--kafka-brokers", "k:1", "--database-url", "x", "--source-signing-disabled", "--integrity-disabled"}
	tests := []struct {
		name    string
		env     map[string]string
		args    []string
		want    string
		wantErr string
	}{
		{name: "host name by default", want: host},
		{name: "pod name", env: map[string]string{"POD_NAME": "writer-0"}, want: "writer-0"},
		{name: "instance id wins over the pod name", env: map[string]string{"POD_NAME": "writer-0", "WRITER_INSTANCE_ID": "w-a"}, want: "w-a"},
		{name: "flag", args: []string{"--instance-id", "w.b"}, want: "w.b"},
		{name: "off", env: map[string]string{"GROUP_STATIC_MEMBERSHIP": "false", "WRITER_INSTANCE_ID": "w-a"}, want: ""},
		{name: "not a Kafka name", env: map[string]string{"WRITER_INSTANCE_ID": "writer 0"}, wantErr: `WRITER_INSTANCE_ID "writer 0" must be`},
		{name: "session timeout under the broker minimum", args: []string{"--group-session-timeout", "5s"}, wantErr: "GROUP_SESSION_TIMEOUT"},
		{name: "session timeout as long as a rebalance", args: []string{"--group-session-timeout", "30s"}, wantErr: "GROUP_SESSION_TIMEOUT"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, k := range []string{"POD_NAME", "WRITER_INSTANCE_ID"} {
				t.Setenv(k, "") // restored after the test
				require.NoError(t, os.Unsetenv(k))
			}
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			var w Writer
			err := parse(t, &w, append(base, tt.args...)...)
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, 15*time.Second, w.SessionTimeout, "default")
			got, err := w.MemberName()
			require.NoError(t, err)
			require.Equal(t, tt.want, got)
		})
	}
}

// TestWriterSoftMemoryLimit: the writer limits its heap to
// MEMORY_LIMIT_MIB unless GOMEMLIMIT is set, which the runtime applies.
func TestWriterSoftMemoryLimit(t *testing.T) {
	base := []string{"--kafka-brokers", "k:1", "--database-url", "x", "--source-signing-disabled", "--integrity-disabled"}
	for _, tt := range []struct {
		name       string
		args       []string
		gomemlimit string
		want       int64
	}{
		{name: "default", want: 160 << 20},
		{name: "set", args: []string{"--memory-limit-mib", "512"}, want: 512 << 20},
		{name: "off", args: []string{"--memory-limit-mib", "0"}, want: 0},
		{name: "GOMEMLIMIT wins", gomemlimit: "1GiB", want: 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("GOMEMLIMIT", tt.gomemlimit) // restored after the test
			if tt.gomemlimit == "" {
				require.NoError(t, os.Unsetenv("GOMEMLIMIT"))
			}
			var w Writer
			require.NoError(t, parse(t, &w, append(base, tt.args...)...))
			require.Equal(t, tt.want, w.SoftMemoryLimit())
		})
	}
}

// TestIngestAPIMemory: ingest-api collects at APIGCPercent unless GOGC is
// set, and limits its heap to MEMORY_LIMIT_MIB unless GOMEMLIMIT is set;
// the runtime applies the variables itself.
func TestIngestAPIMemory(t *testing.T) {
	base := []string{"--kafka-brokers", "k:1", "--database-url", "x", "--auth-tokens-file", "t", "--source-signing-disabled"}
	for _, tt := range []struct {
		name          string
		args          []string
		gogc, memlim  string
		wantLimit     int64
		wantGCPercent int
	}{
		{name: "defaults", wantLimit: 384 << 20, wantGCPercent: APIGCPercent},
		{name: "limit set", args: []string{"--memory-limit-mib", "1024"}, wantLimit: 1024 << 20, wantGCPercent: APIGCPercent},
		{name: "limit off", args: []string{"--memory-limit-mib", "0"}, wantLimit: 0, wantGCPercent: APIGCPercent},
		{name: "GOGC and GOMEMLIMIT win", gogc: "100", memlim: "512MiB", wantLimit: 0, wantGCPercent: 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			for name, v := range map[string]string{"GOGC": tt.gogc, "GOMEMLIMIT": tt.memlim} {
				t.Setenv(name, v) // restored after the test
				if v == "" {
					require.NoError(t, os.Unsetenv(name))
				}
			}
			var api IngestAPI
			require.NoError(t, parse(t, &api, append(base, tt.args...)...))
			require.Equal(t, tt.wantLimit, api.SoftMemoryLimit())
			percent, ok := api.GCPercent()
			require.Equal(t, tt.wantGCPercent != 0, ok)
			require.Equal(t, tt.wantGCPercent, percent)
		})
	}
}
