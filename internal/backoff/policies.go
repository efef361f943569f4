package backoff

import "time"

// The retry policies of the binaries, in one place. A first ceiling is
// long enough not to spin against a server that is restarting and short
// enough to go unnoticed after a blip; a cap is how long a dependency that
// comes back may go unnoticed.
var (
	// KafkaConnect paces a producer dialling the brokers. 250 ms first:
	// a broker that is restarting (a rolling upgrade) is back within a
	// second or two, and the API answers 503 until then. 10 s cap: the
	// API must turn ready soon after Kafka is back.
	KafkaConnect = Policy{First: 250 * time.Millisecond, Max: 10 * time.Second}

	// Migrate paces the start-up migration while PostgreSQL is
	// unreachable. 500 ms first: a database started next to the binary
	// (docker compose, a pod) accepts connections after a second or more.
	// 10 s cap: a schema that is late delays readiness by at most that.
	Migrate = Policy{First: 500 * time.Millisecond, Max: 10 * time.Second}

	// SpoolDrain paces ingest-api's drainer while Kafka cannot take the
	// spooled records. 100 ms first: a blip (a leader election) costs the
	// drain little. 2 s cap: the spool must start draining soon after Kafka
	// is back, since records queue behind it meanwhile; each attempt is
	// one publish, bounded by PUBLISH_TIMEOUT.
	SpoolDrain = Policy{First: 100 * time.Millisecond, Max: 2 * time.Second}

	// ReplayerConnect paces the dlq-replayer daemon dialling the brokers.
	// 1 s first, 30 s cap: the replayer runs every interval (minutes) and
	// nobody waits on it, so it knocks less often than the pipeline does.
	ReplayerConnect = Policy{First: time.Second, Max: 30 * time.Second}
)

// Writer paces every retry loop of the writer: a batch waiting out a
// database outage, dead letters waiting for Kafka, rejoining the consumer
// group. 100 ms first: a blip (a failover, a dropped connection) costs a
// batch no more than that. The cap is the operator's MAX_BACKOFF (10 s by
// default): how long the writer may miss that the database is back.
func Writer(max time.Duration) Policy {
	return Policy{First: 100 * time.Millisecond, Max: max}
}
