package api_test

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/auditstream/auditstream/internal/api"
	"github.com/auditstream/auditstream/internal/kafka"
	"github.com/auditstream/auditstream/internal/testenv"
)

// TestConcurrentDuplicateNotifications: requests racing with one
// notification_id and different content get exactly one 201; the others
// get 409, and what the writer stores is the 201's record with its id.
// Identical records racing are one record retried: every answer is the
// same 201.
func TestConcurrentDuplicateNotifications(t *testing.T) {
	f := newFixture(t)
	runWriter(t, f)
	const n = 20
	post := func(bodies []map[string]any) []response {
		out := make([]response, len(bodies))
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i, b := range bodies {
			wg.Go(func() {
				<-start
				out[i] = f.postJSON("/api/v1/audit/notifications", b)
			})
		}
		close(start)
		wg.Wait()
		return out
	}

	t.Run("different content", func(t *testing.T) {
		nid := "race-" + uuid.NewString()
		bodies := make([]map[string]any, n)
		for i := range bodies {
			bodies[i] = validNotification(nid)
			bodies[i]["message_summary"] = fmt.Sprintf("attempt %d", i)
		}
		var created []map[string]any
		for _, res := range post(bodies) {
			switch res.status {
			case http.StatusCreated:
				created = append(created, res.json(t))
			case http.StatusConflict:
				require.Equal(t, "https://auditstream.dev/problems/duplicate-notification", res.json(t)["type"])
			default:
				t.Fatalf("unexpected answer %d: %s", res.status, res.body)
			}
		}
		require.Len(t, created, 1, "exactly one 201")
		stored := awaitStoredNotification(t, nid)
		require.EqualValues(t, created[0]["id"], stored.id)
		require.Equal(t, created[0]["message_summary"], stored.summary)
		require.Equal(t, created[0]["created_at"], stored.createdAt)
	})

	t.Run("identical content", func(t *testing.T) {
		nid := "race-" + uuid.NewString()
		bodies := make([]map[string]any, n)
		for i := range bodies {
			bodies[i] = validNotification(nid)
		}
		answers := post(bodies)
		first := answers[0].json(t)
		for _, res := range answers {
			require.Equal(t, http.StatusCreated, res.status, "%s", res.body)
			require.Equal(t, first, res.json(t), "one record, one answer")
		}
		require.EqualValues(t, first["id"], awaitStoredNotification(t, nid).id)
	})
}

// TestNotificationAfterA503IsNotPoisoned: when Kafka took nothing, the
// reservation is released, so the notification_id is free again for any
// content; the same content retried gets a fresh 201.
func TestNotificationAfterA503IsNotPoisoned(t *testing.T) {
	down, err := newProducer(shared.kafka.Brokers(), time.Second)
	require.NoError(t, err) // never connected: every publish fails outright
	nid := "after-503-" + uuid.NewString()
	broken := newFixture(t, func(_ *api.Config, d *api.Deps) { d.Publisher = kafka.NewPublisher(down) })
	res := broken.postJSON("/api/v1/audit/notifications", validNotification(nid))
	require.Equal(t, http.StatusServiceUnavailable, res.status, "%s", res.body)

	f := newFixture(t)
	other := validNotification(nid)
	other["recipient"] = "someone-else@example.com"
	res = f.postJSON("/api/v1/audit/notifications", other)
	require.Equal(t, http.StatusCreated, res.status, "the 503 left nothing behind: %s", res.body)
	require.Equal(t, "someone-else@example.com", res.json(t)["recipient"])
}

type storedNotification struct {
	id                 int64
	summary, createdAt string
}

// awaitStoredNotification waits for the writer to store nid and reads it.
func awaitStoredNotification(t *testing.T, nid string) storedNotification {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), shared.pg.URL())
	require.NoError(t, err)
	defer conn.Close(context.Background())
	var s storedNotification
	testenv.Await(t, 30*time.Second, "notification "+nid+" stored", func() (bool, string) {
		var at time.Time
		err := conn.QueryRow(t.Context(), `SELECT id, message_summary, created_at FROM notification_audit WHERE notification_id = $1`, nid).
			Scan(&s.id, &s.summary, &at)
		s.createdAt = at.UTC().Format(time.RFC3339Nano)
		return err == nil, fmt.Sprint(err)
	})
	return s
}
