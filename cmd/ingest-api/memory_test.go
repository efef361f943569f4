package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/auditstream/auditstream/internal/store"
	"github.com/auditstream/auditstream/internal/testenv"
)

// TestStalledReadersDoNotExhaustMemory is the scenario of issue 18: pages
// of 1,000 events with 64 KiB of event_data each (some 66 MB), asked for by
// 16 clients that send the request and never read. A page built in memory
// cost ~210 MB per client; streamed, the API stays under 300 MiB of
// resident memory at its peak (VmHWM), and cuts the stalled clients off at
// HTTP_WRITE_TIMEOUT, freeing their database connections. The byte cap is
// raised past the page here, so that it is the streaming that is measured.
func TestStalledReadersDoNotExhaustMemory(t *testing.T) {
	const (
		clients  = 16
		limitRSS = 300 << 20
	)
	pg := testenv.NewPostgres(t)
	_, err := store.Migrate(t.Context(), pg.URL(), zap.NewNop())
	require.NoError(t, err)
	// 64 KiB of event_data per event: md5 hex (32 bytes) 2048 times.
	require.NoError(t, pg.Exec(t.Context(), `INSERT INTO audit_events
		(event_id, event_timestamp, version, event_type, event_category, event_action, event_outcome, correlation_id, event_data)
		SELECT md5(i::text)::uuid, now() - i * interval '1 second', '1.0', 'load.test', 'gateway', 'read', 'success',
		       'corr-' || i, jsonb_build_object('blob', repeat(md5(i::text), 2048))
		FROM generate_series(1, 1000) AS i`))

	api := startAPI(t, "DATABASE_URL="+pg.URL(), "MIGRATE=false", "AUTH_DISABLED=true", "SOURCE_SIGNING_DISABLED=true",
		"DATABASE_MAX_CONNS=20", // every client streams at once
		"HTTP_WRITE_TIMEOUT=3s", "PUBLISH_TIMEOUT=1s", "DUPLICATE_CHECK_TIMEOUT=1s", "QUERY_TIMEOUT=1s",
		"QUERY_MAX_PAGE_BYTES=134217728")
	addr := strings.TrimPrefix(api.base, "http://")

	// One client that reads: the page is whole and well-formed.
	res, err := http.Get(api.base + "/api/v1/audit/events?limit=1000")
	require.NoError(t, err)
	n, err := io.Copy(io.Discard, res.Body)
	res.Body.Close()
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, res.StatusCode)
	require.Greater(t, n, int64(1000*64<<10), "the page is all 1,000 events")

	for range clients {
		conn, err := net.Dial("tcp", addr)
		require.NoError(t, err)
		t.Cleanup(func() { _ = conn.Close() })
		_, err = fmt.Fprintf(conn, "GET /api/v1/audit/events?limit=1000 HTTP/1.1\r\nHost: %s\r\n\r\n", addr)
		require.NoError(t, err)
	}
	pid := api.Pid()
	// Until the API has given up on every stalled client (or its memory
	// has passed the bound, which fails below).
	testenv.Await(t, 90*time.Second, "the stalled requests cut off", func() (bool, string) {
		done := answered(t, api.metrics, `auditstream_http_requests_total{code="200",method="GET",route="/api/v1/audit/events"}`)
		peak := peakRSS(t, pid)
		return done == 1+clients || peak > limitRSS, fmt.Sprintf("%d of %d requests done, peak RSS %d MiB", done, 1+clients, peak>>20)
	})
	peak := peakRSS(t, pid)
	t.Logf("peak RSS with %d stalled readers: %d MiB", clients, peak>>20)
	require.Less(t, peak, int64(limitRSS), "peak resident memory")

	// The API serves on, with its database connections back.
	code, err := get(api.base + "/api/v1/audit/events?limit=1")
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, code)
}

// peakRSS reads the process's peak resident set size (VmHWM) from /proc.
func peakRSS(t *testing.T, pid int) int64 {
	t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	require.NoError(t, err)
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			require.NoError(t, err)
			return kb << 10
		}
	}
	require.NoError(t, sc.Err())
	t.Fatal("no VmHWM in /proc/<pid>/status")
	return 0
}

// answered returns the value of the counter series from /metrics, 0 when
// absent.
func answered(t *testing.T, base, series string) int {
	t.Helper()
	res, err := http.Get(base + "/metrics")
	require.NoError(t, err)
	defer res.Body.Close()
	sc := bufio.NewScanner(res.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), series+" "); ok {
			n, err := strconv.ParseFloat(v, 64)
			require.NoError(t, err)
			return int(n)
		}
	}
	require.NoError(t, sc.Err())
	return 0
}
