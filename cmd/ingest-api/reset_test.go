package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/auditstream/auditstream/internal/testenv"
)

// TestBrokerResetCreatesTopicsAgain: when the cluster is rebuilt empty
// under a running API (a fresh broker on the same address that would
// create topics on first use with 10 partitions), the API creates its
// topics again with TOPIC_PARTITIONS and events are accepted into them.
func TestBrokerResetCreatesTopicsAgain(t *testing.T) {
	k := testenv.NewKafka(t, nil)
	// A database of its own: the test must not depend on the state other
	// tests leave the shared one in.
	db := "reset_" + strings.ReplaceAll(uuid.NewString()[:8], "-", "")
	require.NoError(t, shared.pg.Exec(t.Context(), "CREATE DATABASE "+db))
	t.Cleanup(func() { _ = shared.pg.Exec(context.Background(), "DROP DATABASE IF EXISTS "+db+" WITH (FORCE)") })
	dbURL, err := shared.pg.URLAs("", db)
	require.NoError(t, err)
	addr := testenv.NewAddr(t)
	topic := "reset-" + strings.ToLower(t.Name()) + ".events"
	api := testenv.StartProcess(t, shared.bin, nil,
		"KAFKA_BROKERS="+strings.Join(k.Brokers(), ","),
		"DATABASE_URL="+dbURL,
		"HTTP_ADDR="+addr,
		"EVENTS_TOPIC="+topic,
		"TOPIC_PARTITIONS=4",
		"TOPIC_CHECK_INTERVAL=500ms",
		"METRICS_ADDR="+testenv.NewAddr(t),
		"SOURCE_KEYS_FILE="+testenv.NewSourceKeys(t),
		// Not a test of access control.
		"AUTH_DISABLED=true",
	)
	base := "http://" + addr
	api.AwaitReady(t, 30*time.Second, base+"/health/ready")
	post := func() (int, string) {
		event := fmt.Sprintf(`{"version":"1.0","event_type":"reset.test","event_timestamp":%q,
			"event_category":"gateway","event_action":"received","event_outcome":"success",
			"correlation_id":"rr-reset","event_data":{}}`, time.Now().UTC().Format(time.RFC3339))
		res, err := http.Post(base+"/api/v1/audit/events", "application/json", strings.NewReader(event))
		if err != nil {
			return 0, err.Error()
		}
		defer res.Body.Close()
		body, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(body)
	}
	code, body := post()
	require.Equal(t, http.StatusCreated, code, body)

	require.NoError(t, k.Reset(kfake.AllowAutoTopicCreation(), kfake.DefaultNumPartitions(10)))
	testenv.Await(t, 60*time.Second, "an event accepted after the reset", func() (bool, string) {
		code, body := post()
		return code == http.StatusCreated, fmt.Sprintf("%d %s", code, body)
	})
	details, err := k.Topics(t.Context(), topic)
	require.NoError(t, err)
	require.NoError(t, details[topic].Err)
	require.Len(t, details[topic].Partitions, 4, "created again with TOPIC_PARTITIONS, not the broker's default")
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	recs, err := testenv.ConsumeAll(ctx, k.Brokers(), topic, 1)
	require.NoError(t, err, "the accepted event is in the new topic")
	require.Contains(t, string(recs[0].Value), "rr-reset")
}
