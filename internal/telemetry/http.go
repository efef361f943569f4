package telemetry

import (
	"encoding/json"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

type statusBody struct {
	Status string `json:"status"`
	Error  string `json:"error,omitempty"`
}

func writeStatus(w http.ResponseWriter, code int, body any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(body)
}

// withNotes adds the health notes and details to a /health body.
func (h *Health) withNotes(body statusBody) any {
	if len(h.notes) == 0 && len(h.details) == 0 {
		return body
	}
	m := make(map[string]any, len(h.notes)+len(h.details)+2)
	for k, v := range h.notes {
		m[k] = v
	}
	for k, state := range h.details {
		m[k] = state()
	}
	m["status"] = body.Status
	if body.Error != "" {
		m["error"] = body.Error
	}
	return m
}

// LiveHandler serves /health/live: 200 while the process runs.
func (h *Health) LiveHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		writeStatus(w, http.StatusOK, statusBody{Status: "alive"})
	})
}

// ReadyHandler serves /health/ready: 200 when the process takes traffic,
// 503 while starting or shutting down.
func (h *Health) ReadyHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if ok, reason := h.Ready(); !ok {
			writeStatus(w, http.StatusServiceUnavailable, statusBody{Status: "not_ready", Error: reason})
			return
		}
		writeStatus(w, http.StatusOK, statusBody{Status: "ready"})
	})
}

// HealthHandler serves /health: 200 when every dependency check passes.
func (h *Health) HealthHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := h.Check(r.Context()); err != nil {
			writeStatus(w, http.StatusServiceUnavailable, h.withNotes(statusBody{Status: "unhealthy", Error: err.Error()}))
			return
		}
		writeStatus(w, http.StatusOK, h.withNotes(statusBody{Status: "healthy"}))
	})
}

// MetricsHandler serves the registry in the Prometheus text format.
func MetricsHandler(g prometheus.Gatherer) http.Handler {
	return promhttp.HandlerFor(g, promhttp.HandlerOpts{EnableOpenMetrics: false})
}

// OpsMux serves /metrics and the health endpoints: the whole HTTP surface of
// the writer and the replayer daemon (METRICS_ADDR).
func OpsMux(h *Health, g prometheus.Gatherer) *http.ServeMux {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", MetricsHandler(g))
	mux.Handle("GET /health", h.HealthHandler())
	mux.Handle("GET /health/live", h.LiveHandler())
	mux.Handle("GET /health/ready", h.ReadyHandler())
	return mux
}
