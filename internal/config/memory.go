package config

import "os"

// softMemoryLimit is the Go heap limit a binary sets at start, in bytes: its
// MEMORY_LIMIT_MIB, or 0 (leave the runtime's) when GOMEMLIMIT is set (the
// Kubernetes manifests set it from the container's limit) or the setting
// is 0.
func softMemoryLimit(mib int64) int64 {
	if _, set := os.LookupEnv("GOMEMLIMIT"); set {
		return 0
	}
	return mib << 20
}

// APIGCPercent is the collector's GOGC that ingest-api runs with unless
// GOGC is set. Its live heap is small (the requests in flight), so at the
// runtime's 100 it collected every few milliseconds under load: 9 % of its
// CPU per request. At 400 that share fell to about a third and a request
// cost 16 % less CPU; MEMORY_LIMIT_MIB (or GOMEMLIMIT) bounds what the
// larger headroom may take.
const APIGCPercent = 400

// GCPercent is the GOGC ingest-api sets at start, and false when the
// GOGC environment variable is set (the runtime applied it).
func (c IngestAPI) GCPercent() (int, bool) {
	if _, set := os.LookupEnv("GOGC"); set {
		return 0, false
	}
	return APIGCPercent, true
}

// SoftMemoryLimit is the Go heap limit ingest-api sets at start, in bytes
// (softMemoryLimit).
func (c IngestAPI) SoftMemoryLimit() int64 { return softMemoryLimit(c.MemoryLimitMiB) }
