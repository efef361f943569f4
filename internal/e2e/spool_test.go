package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/auditstream/auditstream/internal/testenv"
)

// The fault tests of the local spool (SPEC 11) through the real binaries:
// a broker that goes away and comes back (empty, as the embedded broker
// does, or with what it stored, as a real one does), an API killed with
// records in its spool, a spool that fills up, a disk that cannot be
// written, a spool file damaged while the API was down.

// spoolTopics are the pipeline's topics, created anew by a broker that
// comes back empty.
var spoolTopics = map[string]int32{"audit.events": 3, "audit.notifications": 1, "audit.dlq": 1, "audit.dlq.parked": 1}

// spoolPipeline is a broker a test can stop, PostgreSQL, the writer and
// the API with a spool in a directory of the test's.
type spoolPipeline struct {
	t        *testing.T
	kafka    *testenv.Kafka
	pg       *testenv.Postgres
	env      []string
	spoolDir string
	api      *service
}

func newSpoolPipeline(t *testing.T, apiEnv ...string) *spoolPipeline {
	t.Helper()
	p := &spoolPipeline{t: t, kafka: testenv.NewRestartableKafka(t, spoolTopics), pg: testenv.NewPostgres(t),
		spoolDir: filepath.Join(t.TempDir(), "spool")}
	p.env = append(p.kafka.Env(), "DATABASE_URL="+p.pg.URL(), "SOURCE_KEYS_FILE="+testenv.NewSourceKeys(t), "AUTH_DISABLED=true")
	writer := start(t, "writer", p.env...)
	writer.awaitReady(t)
	p.startAPI(apiEnv...)
	p.api.awaitReady(t)
	return p
}

// startAPI starts an ingest-api on the pipeline's spool directory. A
// short publish timeout keeps the first requests of an outage short.
func (p *spoolPipeline) startAPI(env ...string) {
	p.api = start(p.t, "ingest-api", append(append(p.env, "SPOOL_DIR="+p.spoolDir, "PUBLISH_TIMEOUT=1s"), env...)...)
}

func (p *spoolPipeline) url(path string) string { return "http://" + p.api.addr + path }

// post sends body to path and returns the status and the problem type
// (empty for a success).
func (p *spoolPipeline) post(path, body string) (int, string) {
	code, resp, err := httpDo(http.MethodPost, p.url(path), body)
	if err != nil {
		return 0, err.Error()
	}
	if code >= 300 {
		var prob struct{ Type, Detail string }
		_ = json.Unmarshal([]byte(resp), &prob)
		return code, strings.TrimPrefix(prob.Type, "https://auditstream.dev/problems/") + ": " + prob.Detail
	}
	return code, ""
}

// events returns n events with client ids, and the ids.
func events(n int, correlation string) ([]string, []string) {
	bodies, ids := make([]string, n), make([]string, n)
	for i := range n {
		ids[i] = uuid.NewString()
		bodies[i] = eventJSON(ids[i], fmt.Sprintf("%s-%d", correlation, i%13))
	}
	return bodies, ids
}

// stored counts the rows of ids in audit_events, and all rows.
func (p *spoolPipeline) stored(ids []string) (matching, all int) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, p.pg.URL())
	if err != nil {
		return -1, -1
	}
	defer conn.Close(context.Background())
	if err := conn.QueryRow(ctx, `SELECT count(*) FILTER (WHERE event_id = ANY($1::uuid[])), count(*) FROM audit_events`, ids).
		Scan(&matching, &all); err != nil {
		return -1, -1
	}
	return matching, all
}

// awaitStoredOnce waits until every one of ids is in PostgreSQL, and
// checks that nothing else is: exactly once each (event_id is the key of
// audit_events, so a duplicate could only be an extra row).
func (p *spoolPipeline) awaitStoredOnce(ids []string, within time.Duration) {
	p.t.Helper()
	testenv.Await(p.t, within, "every accepted event stored", func() (bool, string) {
		matching, all := p.stored(ids)
		return matching == len(ids), fmt.Sprintf("%d of %d stored (%d rows)", matching, len(ids), all)
	})
	matching, all := p.stored(ids)
	require.Equal(p.t, len(ids), matching)
	require.Equal(p.t, len(ids), all, "nothing but the accepted events, each once")
}

// spoolState is the spool member of /health.
func (p *spoolPipeline) spoolState() (records int, state string) {
	_, body, err := httpDo(http.MethodGet, p.url("/health"), "")
	if err != nil {
		return -1, err.Error()
	}
	var h struct {
		Spool struct {
			State   string
			Records int
		}
	}
	if err := json.Unmarshal([]byte(body), &h); err != nil {
		return -1, body
	}
	return h.Spool.Records, h.Spool.State
}

// postAll posts the events, singles first then batches of batch, from
// workers clients at once, and returns every answer's status (and problem).
func (p *spoolPipeline) postAll(bodies []string, singles, batch, workers int) map[string]int {
	type job struct{ path, body string }
	jobs := make(chan job)
	go func() {
		defer close(jobs)
		for _, b := range bodies[:singles] {
			jobs <- job{"/api/v1/audit/events", b}
		}
		for rest := bodies[singles:]; len(rest) > 0; {
			n := min(batch, len(rest))
			jobs <- job{"/api/v1/audit/events/batch", "[" + strings.Join(rest[:n], ",") + "]"}
			rest = rest[n:]
		}
	}()
	var mu sync.Mutex
	answers := map[string]int{}
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for j := range jobs {
				code, problem := p.post(j.path, j.body)
				mu.Lock()
				answers[fmt.Sprint(code, " ", problem)]++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return answers
}

// TestSpoolSurvivesSIGKILLWhileKafkaIsDown: with the broker stopped, 5,000
// events (1,000 single, 4,000 in batches of 100, client ids) are all
// answered 202; the API is SIGKILLed; an empty broker comes back (the
// topics created anew); the restarted API drains its spool before it
// reports ready, and every event is stored exactly once.
func TestSpoolSurvivesSIGKILLWhileKafkaIsDown(t *testing.T) {
	p := newSpoolPipeline(t)
	bodies, ids := events(5000, "sigkill")
	p.kafka.Stop()
	answers := p.postAll(bodies, 1000, 100, 8)
	require.Equal(t, map[string]int{"202 ": 1000 + 40}, answers, "every single and batch request answered 202")
	records, state := p.spoolState()
	require.Equal(t, 5000, records)
	require.Equal(t, "spooling", state)

	require.NoError(t, p.api.Signal(syscall.SIGKILL))
	p.api.WaitExit(t, 10*time.Second)
	require.NoError(t, p.kafka.RestartEmpty())

	p.startAPI()
	p.api.awaitReady(t)
	records, state = p.spoolState()
	require.Equal(t, 0, records, "ready only once drained (%s)", state)
	p.awaitStoredOnce(ids, 2*time.Minute)
}

// TestSpoolUnderAFlappingBroker: a steady stream of single and batch
// requests while the broker goes down and up every couple of seconds
// (keeping what it stored, as a real broker does): every event answered
// 201 or 202 is stored exactly once, and nothing is answered 5xx but a
// 503 of a full spool.
func TestSpoolUnderAFlappingBroker(t *testing.T) {
	p := newSpoolPipeline(t)
	ctx, stop := context.WithTimeout(t.Context(), 20*time.Second)
	defer stop()
	var flaps sync.WaitGroup
	flaps.Go(func() {
		for ctx.Err() == nil {
			p.kafka.Stop()
			select {
			case <-ctx.Done():
			case <-time.After(2 * time.Second):
			}
			if err := p.kafka.Restart(); err != nil {
				t.Errorf("restart the broker: %v", err)
				return
			}
			select {
			case <-ctx.Done():
			case <-time.After(3 * time.Second):
			}
		}
	})

	var mu sync.Mutex
	var accepted []string
	answers := map[string]int{}
	var clients sync.WaitGroup
	for c := range 4 {
		clients.Go(func() {
			pace := time.NewTicker(20 * time.Millisecond)
			defer pace.Stop()
			for i := 0; ctx.Err() == nil; i++ {
				select {
				case <-ctx.Done():
					return
				case <-pace.C:
				}
				n, path := 1, "/api/v1/audit/events"
				if (c+i)%3 == 0 {
					n, path = 20, "/api/v1/audit/events/batch"
				}
				bodies, ids := events(n, fmt.Sprintf("flap-%d", c))
				body := bodies[0]
				if n > 1 {
					body = "[" + strings.Join(bodies, ",") + "]"
				}
				code, problem := p.post(path, body)
				mu.Lock()
				answers[fmt.Sprint(code)]++
				switch {
				case code == http.StatusCreated || code == http.StatusAccepted:
					accepted = append(accepted, ids...)
				case code >= 500 && !strings.HasPrefix(problem, "spool-full"):
					t.Errorf("answered %d %s", code, problem)
				}
				mu.Unlock()
			}
		})
	}
	clients.Wait()
	flaps.Wait()
	require.NoError(t, p.kafka.Restart())
	t.Logf("answers: %v", answers)
	require.Positive(t, answers["202"], "some records were spooled")
	require.Positive(t, answers["201"], "some went straight to Kafka")
	p.awaitStoredOnce(accepted, 2*time.Minute)
}

// TestSpoolFullAnswers503ThenDrains: a spool of SPOOL_MAX_BYTES fills
// while the broker is down and then answers 503 spool-full with
// Retry-After, and readiness turns 503; once the broker is back it drains,
// and the API answers 201 again.
func TestSpoolFullAnswers503ThenDrains(t *testing.T) {
	p := newSpoolPipeline(t, "SPOOL_MAX_BYTES=1048576")
	p.kafka.Stop()
	var accepted []string
	var full string
	for range 200 {
		bodies, ids := events(50, "full")
		code, resp, err := httpDo(http.MethodPost, p.url("/api/v1/audit/events/batch"), "["+strings.Join(bodies, ",")+"]")
		require.NoError(t, err)
		if code == http.StatusAccepted {
			accepted = append(accepted, ids...)
			continue
		}
		require.Equal(t, http.StatusServiceUnavailable, code, resp)
		full = resp
		break
	}
	require.Contains(t, full, "problems/spool-full", "full, never a dropped record")
	require.NotEmpty(t, accepted)
	testenv.Await(t, 10*time.Second, "not ready while full", func() (bool, string) {
		code, body, err := httpDo(http.MethodGet, p.url("/health/ready"), "")
		return err == nil && code == http.StatusServiceUnavailable, fmt.Sprint(code, body, err)
	})

	require.NoError(t, p.kafka.Restart())
	testenv.Await(t, time.Minute, "the spool drained", func() (bool, string) {
		records, state := p.spoolState()
		return records == 0, fmt.Sprint(records, state)
	})
	p.api.awaitReady(t)
	bodies, ids := events(1, "after-full")
	code, problem := p.post("/api/v1/audit/events", bodies[0])
	require.Equal(t, http.StatusCreated, code, problem)
	p.awaitStoredOnce(append(accepted, ids...), time.Minute)
}

// TestSpoolDiskErrorsAnswer503: a read-only SPOOL_DIR, and one on a
// file system that fills up (a 1 MiB tmpfs mounted in a mount namespace
// of the API's own, so nothing outlives the test): what the spool cannot
// write is answered 503 spool-unavailable with the system's reason, never
// 202, and the API keeps running.
func TestSpoolDiskErrorsAnswer503(t *testing.T) {
	for _, c := range []struct {
		name, mount, reason string
	}{
		{"read-only", "ro,size=1m", "read-only file system"},
		{"no space", "size=1m", "no space left on device"},
	} {
		t.Run(c.name, func(t *testing.T) {
			k := testenv.NewRestartableKafka(t, spoolTopics)
			pg := testenv.NewPostgres(t)
			dir := filepath.Join(t.TempDir(), "spool")
			require.NoError(t, os.Mkdir(dir, 0o750))
			addr := testenv.NewAddr(t)
			env := append(k.Env(), "DATABASE_URL="+pg.URL(), "SOURCE_KEYS_FILE="+testenv.NewSourceKeys(t), "AUTH_DISABLED=true",
				"HTTP_ADDR="+addr, "METRICS_ADDR="+testenv.NewAddr(t), "SPOOL_DIR="+dir, "SPOOL_MAX_BYTES=67108864",
				"PUBLISH_TIMEOUT=1s", "LOG_FORMAT=json", "SHUTDOWN_DELAY=0s")
			api := &service{Process: testenv.StartProcess(t, "/usr/bin/unshare", inMountNamespace(c.mount, dir, filepath.Join(bin, "ingest-api")), env...),
				name: "ingest-api", addr: addr}
			api.awaitReady(t)
			p := &spoolPipeline{t: t, api: api}
			k.Stop()

			var refused string
			for i := 0; i < 400 && refused == ""; i++ {
				bodies, _ := events(20, "disk")
				code, problem := p.post("/api/v1/audit/events/batch", "["+strings.Join(bodies, ",")+"]")
				switch code {
				case http.StatusAccepted:
					require.NotEqual(t, "read-only", c.name, "a read-only spool never answers 202")
				case http.StatusServiceUnavailable:
					refused = problem
				default:
					t.Fatalf("answered %d %s", code, problem)
				}
			}
			require.True(t, strings.HasPrefix(refused, "spool-unavailable: "), refused)
			require.Contains(t, refused, c.reason)
			require.NotContains(t, refused, dir, "the reason, not the path")
			_, state := p.spoolState()
			require.NotEqual(t, "", state)
			require.True(t, api.Running(), "a disk error does not stop the API")
		})
	}
}

// inMountNamespace is unshare's command line that runs bin with a tmpfs
// of the given options mounted on dir, in a mount namespace of its own
// (with a user namespace when not root, where mounting needs one).
func inMountNamespace(options, dir, bin string) []string {
	args := []string{"--mount"}
	if os.Geteuid() != 0 {
		args = append(args, "--user", "--map-root-user")
	}
	return append(args, "sh", "-c", `mount -t tmpfs -o "$0" tmpfs "$1" && exec "$2"`, options, dir, bin)
}

// TestDamagedSpoolAtStart: the last segment of a spool left by a killed
// API is cut short and ends in garbage; the next API reports the damaged
// part, does not crash, and every intact record is stored.
func TestDamagedSpoolAtStart(t *testing.T) {
	p := newSpoolPipeline(t)
	bodies, ids := events(300, "damaged")
	p.kafka.Stop()
	require.Equal(t, map[string]int{"202 ": 300}, p.postAll(bodies, 300, 1, 4))
	require.NoError(t, p.api.Signal(syscall.SIGKILL))
	p.api.WaitExit(t, 10*time.Second)

	segs, err := filepath.Glob(filepath.Join(p.spoolDir, "*.seg"))
	require.NoError(t, err)
	require.NotEmpty(t, segs)
	last := segs[len(segs)-1]
	fi, err := os.Stat(last)
	require.NoError(t, err)
	require.NoError(t, os.Truncate(last, fi.Size()-100))
	f, err := os.OpenFile(last, os.O_WRONLY|os.O_APPEND, 0)
	require.NoError(t, err)
	_, err = f.WriteString("\x12\x34garbage of a torn write")
	require.NoError(t, err)
	require.NoError(t, f.Close())

	require.NoError(t, p.kafka.Restart())
	p.startAPI()
	p.api.awaitReady(t)
	require.Contains(t, p.api.Stderr.String()+p.api.Stdout.String(), "damaged part", "the bad tail is reported")
	testenv.Await(t, time.Minute, "the intact records stored", func() (bool, string) {
		matching, all := p.stored(ids)
		return matching >= len(ids)-5 && matching == all, fmt.Sprintf("%d of %d stored (%d rows)", matching, len(ids), all)
	})
	matching, all := p.stored(ids)
	require.Equal(t, matching, all, "nothing but what was posted")
	require.Less(t, matching, len(ids), "the cut record is not replayed")
	require.True(t, p.api.Running())
	records, _ := p.spoolState()
	require.Zero(t, records)
}
