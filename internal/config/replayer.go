package config

import (
	"errors"
	"fmt"
	"time"
)

// Replayer configures cmd/dlq-replayer: global settings and one struct per
// subcommand.
type Replayer struct {
	Kafka Kafka  `embed:""`
	Log   Log    `embed:""`
	Group string `name:"consumer-group" env:"REPLAYER_GROUP" default:"auditstream-dlq-replayer" help:"Consumer group whose committed offsets mark what has been handled."`

	Run     ReplayerRun     `cmd:"" help:"Daemon: every --interval, move the DLQ records present at the start of the tick back to their original topic; park those that used up their attempts."`
	Replay  ReplayerReplay  `cmd:"" help:"One pass now, then a summary. Records that the filters do not select stay in the DLQ."`
	List    ReplayerList    `cmd:"" help:"Show the records waiting in the DLQ (or --parked) without moving or committing anything."`
	Inspect ReplayerInspect `cmd:"" help:"Show one record in full: every header and the whole value."`
}

// ReplayerFilters select records for replay and list.
type ReplayerFilters struct {
	ErrorClass    string        `name:"error-class" enum:",poison,failed,conflict" default:"" help:"Only records of this class (poison, failed or conflict)."`
	OriginalTopic string        `name:"original-topic" help:"Only records that came from this topic."`
	OlderThan     time.Duration `name:"older-than" help:"Only records whose last failure is at least this old (e.g. 10m)."`
	NewerThan     time.Duration `name:"newer-than" help:"Only records whose last failure is at most this old (e.g. 1h)."`
	Key           string        `name:"key" help:"Only records with exactly this key (correlation_id or notification_id)."`
	Limit         int           `name:"limit" help:"Stop after this many selected records (0: no limit)."`
}

// Validate rejects filters that select nothing by construction.
func (f ReplayerFilters) Validate() error {
	var errs []error
	if f.OlderThan < 0 || f.NewerThan < 0 || f.Limit < 0 {
		errs = append(errs, errors.New("--older-than, --newer-than and --limit must not be negative"))
	}
	if f.OlderThan > 0 && f.NewerThan > 0 && f.OlderThan > f.NewerThan {
		errs = append(errs, fmt.Errorf("--older-than %s and --newer-than %s select nothing", f.OlderThan, f.NewerThan))
	}
	return errors.Join(errs...)
}

// ReplayerAttempts is the replay budget of a record, shared by run and
// replay so both park at the same point.
type ReplayerAttempts struct {
	MaxAttempts int `name:"max-attempts" env:"MAX_ATTEMPTS" default:"5" help:"Replays before a record is parked in the parked topic."`
}

// Validate reports a budget that cannot work.
func (a ReplayerAttempts) Validate() error {
	if a.MaxAttempts < 1 {
		return fmt.Errorf("--max-attempts must be at least 1, got %d", a.MaxAttempts)
	}
	return nil
}

// ReplayerRun is the daemon.
type ReplayerRun struct {
	ReplayerAttempts `embed:""`
	Interval         time.Duration `name:"interval" env:"REPLAY_INTERVAL" default:"30s" help:"Time between passes."`
	MetricsAddr      string        `name:"metrics-addr" env:"METRICS_ADDR" default:":9091" help:"Address serving /metrics and the health endpoints."`
}

// Validate reports settings that cannot work.
func (r ReplayerRun) Validate() error {
	var errs []error
	if r.Interval < 100*time.Millisecond {
		errs = append(errs, fmt.Errorf("--interval must be at least 100ms, got %s", r.Interval))
	}
	if err := r.ReplayerAttempts.Validate(); err != nil {
		errs = append(errs, err)
	}
	if r.MetricsAddr == "" {
		errs = append(errs, errors.New("METRICS_ADDR must not be empty"))
	}
	return errors.Join(errs...)
}

// ReplayerReplay is one pass.
type ReplayerReplay struct {
	ReplayerFilters  `embed:""`
	ReplayerAttempts `embed:""`
	DryRun           bool `name:"dry-run" help:"Show what would move; move and commit nothing."`
	FromParked       bool `name:"from-parked" help:"Move records from the parked topic back to their original topic (after fixing the cause)."`
	JSON             bool `name:"json" help:"One JSON object per line instead of a table."`
}

// Validate reports settings that cannot work.
func (r ReplayerReplay) Validate() error {
	return errors.Join(r.ReplayerAttempts.Validate(), r.ReplayerFilters.Validate())
}

// ReplayerList reads without moving.
type ReplayerList struct {
	ReplayerFilters `embed:""`
	Parked          bool `name:"parked" help:"Read the parked topic instead of the DLQ."`
	JSON            bool `name:"json" help:"One JSON object per line instead of a table."`
}

// ReplayerInspect shows one record.
type ReplayerInspect struct {
	Partition int32 `name:"partition" short:"p" required:"" help:"Partition of the record in the DLQ (the P column of list)."`
	Offset    int64 `name:"offset" short:"o" required:"" help:"Offset of the record in the DLQ (the OFFSET column of list)."`
	Parked    bool  `name:"parked" help:"Read the parked topic instead of the DLQ."`
	JSON      bool  `name:"json" help:"One JSON object instead of text."`
}

// Validate reports settings that cannot work.
func (c Replayer) Validate() error {
	errs := []error{c.Kafka.Validate()}
	if c.Group == "" {
		errs = append(errs, errors.New("REPLAYER_GROUP must not be empty"))
	}
	return errors.Join(errs...)
}

// Help texts shown by `dlq-replayer <command> --help`, with examples.

// Help implements kong.HelpProvider.
func (ReplayerRun) Help() string {
	return `Runs until SIGTERM. Each tick replays every record that was in the DLQ when
the tick started, adding 1 to its dlq-attempts header; a record whose attempts
reached --max-attempts goes to the parked topic instead, and so does a
conflict (a reused event_id) at once, since replaying it can only repeat the
clash. Serves /metrics, /health, /health/live and /health/ready on
--metrics-addr.

Several daemons may run: each joins the consumer group (--consumer-group) and
moves only the DLQ partitions it is given.

Examples:
  dlq-replayer run
  dlq-replayer run --interval 1m --max-attempts 10 --metrics-addr :9091`
}

// Help implements kong.HelpProvider.
func (ReplayerReplay) Help() string {
	return `Moves the selected records now and prints each one and a summary. Records the
filters do not select stay in the DLQ (re-appended at its end, headers and
value unchanged). Like the daemon it joins the consumer group and moves only
the partitions it is given: next to a running daemon, its share (it says
which partitions the daemon keeps). Every record is acknowledged by Kafka
before its DLQ offset is committed: an interrupted replay loses nothing, and
the writer absorbs a record sent twice.

Examples:
  dlq-replayer replay --dry-run
  dlq-replayer replay --error-class failed --original-topic audit.events
  dlq-replayer replay --key rr-2025-001 --limit 10
  dlq-replayer replay --older-than 10m --json
  dlq-replayer replay --from-parked --error-class failed`
}

// Help implements kong.HelpProvider.
func (ReplayerList) Help() string {
	return `Reads the records waiting for the replayer; moves and commits nothing, so it is
safe at any time, also while the daemon runs.

Examples:
  dlq-replayer list
  dlq-replayer list --error-class poison --limit 20
  dlq-replayer list --parked --error-class conflict
  dlq-replayer list --parked --json | jq -r .error`
}

// Help implements kong.HelpProvider.
func (ReplayerInspect) Help() string {
	return `Prints one record: origin, class, reason, attempts, every header and the whole
value (pretty-printed when it is JSON). P and OFFSET come from list.

Examples:
  dlq-replayer inspect -p 0 -o 42
  dlq-replayer inspect --parked -p 3 -o 7 --json`
}
