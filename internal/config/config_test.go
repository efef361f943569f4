package config

import (
	"testing"
	"time"

	"github.com/alecthomas/kong"
	"github.com/stretchr/testify/require"

	"github.com/auditstream/auditstream/internal/audit"
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

	var api IngestAPI
	require.NoError(t, parse(t, &api, "--http-addr", ":7777"))
	require.Equal(t, []string{"k1:9092", "k2:9092"}, api.Kafka.Brokers)
	require.Equal(t, "postgres://db/audit", api.Postgres.URL)
	require.Equal(t, ":7777", api.HTTPAddr, "the flag wins over HTTP_ADDR")
	require.Equal(t, time.Minute, api.Validation.MaxFutureSkew)
	require.Equal(t, []string{"gateway", "billing"}, api.Validation.EventCategories)
	require.Equal(t, 5*time.Second, api.ShutdownDelay, "default")

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

// TestDefaultsAreTheOwners: the settings default to the values of the
// packages that own them, so a change there reaches the binaries.
func TestDefaultsAreTheOwners(t *testing.T) {
	required := []string{"--kafka-brokers", "k:9092", "--database-url", "postgres://db/audit"}
	var api IngestAPI
	require.NoError(t, parse(t, &api, required...))
	require.Equal(t, audit.DefaultRules(), api.Validation.Rules())
	require.Equal(t, audit.DefaultMaxBatchSize, api.MaxBatchSize)
	require.Equal(t, store.DefaultMaxConns, api.Postgres.MaxConns)

	var w Writer
	require.NoError(t, parse(t, &w, required...))
	require.Equal(t, audit.DefaultRules(), w.Validation.Rules())
	require.Equal(t, store.DefaultMaxConns, w.Postgres.MaxConns)
	require.Equal(t, writer.DefaultGroupStallTimeout, w.GroupStallTimeout)
	require.Equal(t, writer.DefaultGroupPollInterval, w.GroupPollInterval)
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
