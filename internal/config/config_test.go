package config

import (
	"testing"
	"time"

	"github.com/alecthomas/kong"
	"github.com/stretchr/testify/require"
)

func parse(t *testing.T, cfg any, args ...string) error {
	t.Helper()
	parser, err := kong.New(cfg, kong.Name("test"), kong.Exit(func(int) { t.Fatal("kong exited") }))
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

	var w Writer
	require.NoError(t, parse(t, &w))
	require.Equal(t, 123, w.BatchSize)
	require.Equal(t, api.Validation, w.Validation, "the writer reads the API's validation settings")

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
			"--max-body-bytes", "10", "--query-count-cap", "0", "--shutdown-delay=-1s"},
			[]string{"MAX_BATCH_SIZE", "MAX_BODY_BYTES", "QUERY_COUNT_CAP", "SHUTDOWN_DELAY"}},
		{"bad rules", []string{"--kafka-brokers", "k:1", "--database-url", "x", "--max-future-skew=-1m"},
			[]string{"skew"}},
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
