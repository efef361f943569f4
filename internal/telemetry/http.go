package telemetry

import (
	"encoding/json"
	"net/http"
	"net/http/pprof"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

type statusBody struct {
	Status string `json:"status"`
	Error  string `json:"error,omitempty"`
}

func writeJSON(w http.ResponseWriter, code int, body any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(body)
}

// LiveHandler serves /health/live: 200 while the process runs.
func (h *Health) LiveHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, statusBody{Status: "alive"})
	})
}

// ReadyHandler serves /health/ready: 200 when the process takes traffic,
// 503 while starting or shutting down.
func (h *Health) ReadyHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if ok, reason := h.Ready(); !ok {
			writeJSON(w, http.StatusServiceUnavailable, statusBody{Status: "not_ready", Error: reason})
			return
		}
		writeJSON(w, http.StatusOK, statusBody{Status: "ready"})
	})
}

// Component states in health answers.
const (
	stateOK   = "ok"
	stateDown = "down"
)

// healthBody is the open /health answer: SPEC 2.6's status and error, each
// component's state, the notes and the details. error names the failing
// components only.
func (h *Health) healthBody(status, errText string, checks any) map[string]any {
	m := make(map[string]any, len(h.notes)+len(h.details)+3)
	for k, v := range h.notes {
		m[k] = v
	}
	for k, state := range h.details {
		m[k] = state()
	}
	m["status"] = status
	if errText != "" {
		m["error"] = errText
	}
	m["checks"] = checks
	return m
}

// HealthHandler serves /health: 200 when every dependency check passes,
// else 503. It names the components and their states, nothing that they
// said: errors name users, databases, hosts, ports and broker addresses,
// and /health is open. The log (WithLogger) and DetailsHandler have the
// detail.
func (h *Health) HealthHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		checks := map[string]string{}
		var failing []string
		for _, res := range h.Report(r.Context()) {
			checks[res.Name] = stateOK
			if res.Err != nil {
				checks[res.Name] = stateDown
				failing = append(failing, res.Name)
			}
		}
		if len(failing) > 0 {
			errText := "unavailable: " + strings.Join(failing, ", ") + " (the service log has the details)"
			writeJSON(w, http.StatusServiceUnavailable, h.healthBody("unhealthy", errText, checks))
			return
		}
		writeJSON(w, http.StatusOK, h.healthBody("healthy", "", checks))
	})
}

// detailedCheck is one component in DetailsHandler's answer.
type detailedCheck struct {
	Status string `json:"status"`
	Error  string `json:"error,omitempty"`
}

// DetailsHandler serves the detailed health report: /health's answer with
// each failing component's own error in its check. Those errors name connection details,
// so mount it only behind authentication (never next to the open /health).
func (h *Health) DetailsHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		checks := map[string]detailedCheck{}
		code, status := http.StatusOK, "healthy"
		for _, res := range h.Report(r.Context()) {
			if res.Err == nil {
				checks[res.Name] = detailedCheck{Status: stateOK}
				continue
			}
			checks[res.Name] = detailedCheck{Status: stateDown, Error: res.Err.Error()}
			code, status = http.StatusServiceUnavailable, "unhealthy"
		}
		writeJSON(w, code, h.healthBody(status, "", checks))
	})
}

// MetricsHandler serves the registry in the Prometheus text format.
func MetricsHandler(g prometheus.Gatherer) http.Handler {
	return promhttp.HandlerFor(g, promhttp.HandlerOpts{EnableOpenMetrics: false})
}

// ServePprof adds Go's profiler (net/http/pprof) under /debug/pprof/ to an
// OpsMux: on the metrics listener only, never the API's, and only when an
// operator turns it on (PPROF_ENABLED), since a profile shows the
// process's internals and costs CPU while it runs.
func ServePprof(mux *http.ServeMux) {
	mux.HandleFunc("GET /debug/pprof/", pprof.Index)
	mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
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
