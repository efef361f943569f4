package api_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/gin-gonic/gin"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/auditstream/auditstream/internal/api"
)

// BenchmarkAPI measures the write API over real HTTP against the real
// broker, next to a bare gin handler that only decodes and answers JSON, so
// the ratio shows what validation, publishing and acknowledgement cost.
// Run with `make bench-api`.
func BenchmarkAPI(b *testing.B) {
	event, err := json.Marshal(validEvent())
	require.NoError(b, err)

	b.Run("bare-gin-json", func(b *testing.B) {
		gin.SetMode(gin.ReleaseMode)
		r := gin.New()
		r.POST("/api/v1/audit/events", func(c *gin.Context) {
			var body map[string]any
			if err := c.ShouldBindJSON(&body); err != nil {
				c.JSON(http.StatusBadRequest, gin.H{"error": err.Error()})
				return
			}
			c.JSON(http.StatusCreated, gin.H{"event_id": "0190a0a0-0000-7000-8000-000000000000", "message": "ok"})
		})
		srv := httptest.NewServer(r)
		defer srv.Close()
		benchPost(b, srv.URL+"/api/v1/audit/events", event, 1)
	})

	// The access log is written, as in production, to a discarded sink.
	logged := func(_ *api.Config, d *api.Deps) {
		d.Log = zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), zapcore.AddSync(io.Discard), zap.InfoLevel))
	}
	b.Run("single-event", func(b *testing.B) {
		f := newFixture(b, logged)
		benchPost(b, f.url+"/api/v1/audit/events", event, 1)
	})
	for _, size := range []int{100, 1000} {
		b.Run(fmt.Sprintf("batch-%d", size), func(b *testing.B) {
			f := newFixture(b, logged)
			batch := make([]json.RawMessage, size)
			for i := range batch {
				batch[i] = event
			}
			body, err := json.Marshal(batch)
			require.NoError(b, err)
			benchPost(b, f.url+"/api/v1/audit/events/batch", body, size)
		})
	}
}

// benchPost sends body from 32 concurrent keep-alive clients, with the
// fixtures' API key (the bare handler ignores it), and reports requests
// and events per second.
func benchPost(b *testing.B, url string, body []byte, eventsPerRequest int) {
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64, MaxConnsPerHost: 64}}
	b.SetBytes(int64(len(body)))
	b.SetParallelism(16) // 16 × GOMAXPROCS(2) = 32 clients
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
			if err != nil {
				b.Error(err)
				return
			}
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Authorization", "Bearer "+fullAccessToken)
			res, err := client.Do(req)
			if err != nil {
				b.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, res.Body)
			res.Body.Close()
			if res.StatusCode != http.StatusCreated {
				b.Errorf("status %d", res.StatusCode)
				return
			}
		}
	})
	secs := b.Elapsed().Seconds()
	b.ReportMetric(float64(b.N)/secs, "req/s")
	b.ReportMetric(float64(b.N*eventsPerRequest)/secs, "events/s")
}
